"""Nobody in where they don't belong: CSRF, escaping, headers, deploy checks, login hardening and
secrets that never reach a log line or a page."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from generator import actions
from generator.models import AIModel, Generation
from tests.simulators.counting import URL_ENV, CountingSimulator

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """allauth counts attempts in the cache; each test starts from zero."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = '<script>alert("pwn")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert(&quot;pwn&quot;)&lt;/script&gt;"


def walk(resolver, prefix="", ns=""):
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            yield from walk(p, prefix + str(p.pattern), ":".join(x for x in (ns, p.namespace) if x))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), (f"{ns}:{p.name}" if ns else p.name or ""), p


def concrete_path(route: str) -> str:
    """A URL for a route, with every argument filled by a plausible value."""
    route = route.replace("^", "").replace("$", "")
    route = re.sub(r"\(\?P<\w+>[^)]*\)", "x1", route)
    route = re.sub(r"<int:\w+>", "1", route)
    route = re.sub(r"<share_token:\w+>", "A" * 32, route)  # the converter takes only 32 chars
    route = re.sub(r"<\w+:\w+>|<\w+>", "x1", route)
    return "/" + route


# --- CSRF -------------------------------------------------------------------------------------

# Providers cannot send a token (verified by signature instead); the APIs take a bearer key
# and no cookie, so a browser's ambient credentials never authorise them.
CSRF_EXEMPT = {
    "webhooks:receive",
    "api:generations",
    "api:remaining",
    "openai:generations",
    "openai:edits",
    "openai:models",
}


def test_every_post_without_a_csrf_token_is_refused(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    checked = 0
    for route, name, pattern in walk(get_resolver()):
        path = concrete_path(route)
        exempt = getattr(pattern.callback, "csrf_exempt", False)
        if name in CSRF_EXEMPT:
            assert exempt
            continue
        assert not exempt, f"{name} is csrf-exempt"
        response = client.post(path, {"x": "1"})
        assert response.status_code == 403, (path, response.status_code)
        checked += 1
    assert checked > 20


def test_the_prompt_form_works_with_its_token(
    owner, local_model, django_capture_on_commit_callbacks
):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    client.get("/")
    token = client.cookies["csrftoken"].value
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            "/",
            {
                "model": "local-sketch",
                "prompt": "ok",
                "size": "512x512",
                "num_images": "1",
                "csrfmiddlewaretoken": token,
            },
        )
    assert response.status_code == 302
    assert Generation.objects.count() == 1


# --- Escaping ---------------------------------------------------------------------------------


@pytest.fixture
def hostile(owner, local_model, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        gen, _ = actions.submit(
            owner,
            {
                "model": local_model,
                "prompt": PAYLOAD,
                "negative_prompt": PAYLOAD,
                "num_images": 1,
                "options": {"size": "64x64"},
            },
        )
    failed, _ = actions.submit(
        owner, {"model": local_model, "prompt": PAYLOAD + " 2", "options": {"size": "64x64"}}
    )
    failed.fail(f"Provider said: {PAYLOAD}")
    gen.refresh_from_db()
    assert gen.status == Generation.Status.COMPLETED
    return gen


def assert_escaped(body: str, where: str) -> None:
    assert PAYLOAD not in body, f"raw payload on {where}"
    assert '<script>alert("pwn")' not in body, where
    assert "<img src=x onerror" not in body, where


def test_hostile_prompts_are_escaped_on_every_page(client, owner, staff, hostile):
    client.force_login(owner)
    pages = [
        "/",
        "/gallery/",
        f"/gallery/{hostile.public_id}/",
        f"/g/{hostile.public_id}/card/",
        "/gallery/?q=" + PAYLOAD,
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert_escaped(body, url)
    assert ESCAPED in client.get(f"/gallery/{hostile.public_id}/").content.decode()

    client.force_login(staff)
    admin_pages = [
        reverse("admin:generator_generation_changelist"),
        reverse("admin:generator_generation_changelist") + "?q=" + PAYLOAD,
        reverse("admin:generator_generation_change", args=[hostile.pk]),
    ]
    # Every admin page that takes no argument (dashboards, failure lists, changelists).
    for route, name, _ in walk(get_resolver()):
        if name.startswith("admin:") and "<" not in route and "(?P" not in route:
            admin_pages.append(concrete_path(route))
    for url in admin_pages:
        response = client.get(url)
        if response.status_code == 200:
            assert_escaped(response.content.decode(), url)
        else:
            assert response.status_code in (302, 400, 403, 404, 405), (url, response.status_code)


def test_no_template_has_inline_script_or_event_handlers():
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for m in re.finditer(r"<script\b([^>]*)>", text):
            if "src=" not in m.group(1):
                offenders.append(f"{path}: inline <script>")
        if re.search(r"\son[a-z]+\s*=\s*['\"]", text):
            offenders.append(f"{path}: inline event handler")
        if "javascript:" in text.lower():
            offenders.append(f"{path}: javascript: URL")
    assert offenders == []


# --- Headers and deploy checks ------------------------------------------------------------------


def test_pages_carry_the_security_headers(owner_client, local_model):
    for url in ("/", "/gallery/", "/accounts/login/"):
        response = owner_client.get(url)
        csp = response["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'"
        assert directives["default-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert directives["object-src"] == "'none'"
        assert "unsafe-inline" not in directives["script-src"]
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"


def test_the_csp_allows_images_from_the_configured_s3_endpoint(settings):
    from config.security import build_policy

    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9000/"
    assert "img-src 'self' data: https: http://127.0.0.1:9000;" in build_policy()


def test_check_deploy_is_clean_with_production_settings():
    # DJANGO_ALLOW_ASYNC_UNSAFE is a test-run switch (live-server tests) that production never sets.
    dropped = ("DEBUG", "EASEL_ALLOW_DEV_SECRET", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        SECRET_KEY="k" + "Zq8-vX2_pL7#mN4$wR9!tB6^yC1&hJ3*eF5@uA0%dG" * 2,
        DEBUG="false",
        ALLOWED_HOSTS="easel.example.com",
        PUBLIC_BASE_URL="https://easel.example.com",
        CSRF_TRUSTED_ORIGINS="https://easel.example.com",
        SECURE_SSL_REDIRECT="true",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_PRELOAD="true",
        USE_X_FORWARDED_PROTO="true",
        EMAIL_URL="smtp+tls://mailer:pw@smtp.example.com:587",  # easel.E001 without it
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DEBUG", "EASEL_ALLOW_DEV_SECRET", "SECRET_KEY")
    }
    env["DEBUG"] = "false"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


# --- Accounts: rate limits, enumeration, session rotation --------------------------------------


def test_a_burst_of_failed_logins_is_refused(client, owner):
    refused = "Too many failed login attempts"
    answers = [
        client.post("/accounts/login/", {"login": owner.email, "password": "wrong-password"})
        for _ in range(7)
    ]
    assert refused not in answers[0].content.decode()  # the first ones are ordinary errors
    assert any(refused in a.content.decode() or a.status_code == 429 for a in answers)
    # Refused even with the right password while the limit holds.
    response = client.post("/accounts/login/", {"login": owner.email, "password": "pw-Secret-123"})
    assert response.status_code != 302
    assert refused in response.content.decode() or response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_sign_up_is_rate_limited(client, settings):
    statuses = [
        client.post(
            "/accounts/signup/",
            {"email": f"new{i}@example.com", "password1": "x", "password2": "y"},
        ).status_code
        for i in range(25)
    ]
    assert 429 in statuses


def test_password_reset_does_not_reveal_whether_an_account_exists(client, owner):
    known = client.post("/accounts/password/reset/", {"email": owner.email})
    unknown = client.post("/accounts/password/reset/", {"email": "nobody-here@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    # Both addresses get a mail (the unknown one says no account exists) — the page is the same.
    assert {m.to[0] for m in mail.outbox} == {owner.email, "nobody-here@example.com"}


def test_the_session_key_rotates_on_login(client, owner):
    client.get("/accounts/login/")
    session = client.session
    session["visited"] = True
    session.save()
    before = client.cookies["sessionid"].value
    response = client.post("/accounts/login/", {"login": owner.email, "password": "pw-Secret-123"})
    assert response.status_code == 302
    after = client.cookies["sessionid"].value
    assert after != before
    assert client.session["_auth_user_id"] == str(owner.pk)


def test_session_and_csrf_cookies_are_httponly_and_secure_in_production(settings):
    assert settings.SESSION_COOKIE_HTTPONLY is True


# --- Secrets ----------------------------------------------------------------------------------

SECRETS = {
    "openai": "sk-EASELTESTSECRET-openai-7f3a",
    "meteron": "mtr-EASELTESTSECRET-meteron-1b2c",
    "scenario": "scn-EASELTESTSECRET-scenario-9d8e",
    "replicate": "r8-EASELTESTSECRET-replicate-4a5b",
    "counting-sim": "sim-EASELTESTSECRET-counting-6c7d",
}


def test_provider_keys_never_reach_logs_pages_or_the_admin(
    client, owner, staff, settings, caplog, monkeypatch, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "generator", "celery", "django"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    providers = {name: {**conf} for name, conf in settings.EASEL_PROVIDERS.items()}
    for name, key in SECRETS.items():
        providers.setdefault(name, {})["api_key"] = key
    providers["scenario"]["api_secret"] = SECRETS["scenario"] + "-secret"
    providers["replicate"]["webhook_secret"] = "whsec_" + SECRETS["replicate"]
    settings.EASEL_PROVIDERS = providers
    settings.EASEL_PROVIDER_TIMEOUT = 0.3
    settings.EASEL_MAX_TRANSIENT_RETRIES = 1

    with CountingSimulator(api_key=SECRETS["counting-sim"]) as sim:
        providers["counting-sim"]["base_url"] = sim.url
        monkeypatch.setenv(URL_ENV, sim.url)
        model = AIModel.objects.create(
            slug="sim",
            name="Sim",
            provider="counting-sim",
            remote_id="sim",
            options={"sizes": ["64x64"], "max_images": 1},
        )
        gens = []
        for faults in (
            {},
            {"status": 500},
            {"status": 401},
            {"malformed_json": True},
            {"reset": True},
        ):
            sim.faults = type(sim.faults)(**faults)
            with django_capture_on_commit_callbacks(execute=True):
                gens.append(
                    actions.submit(
                        owner,
                        {"model": model, "prompt": "secret test", "options": {"size": "64x64"}},
                    )[0]
                )
        # The simulator really received the key: the test would catch a leak if there were one.
        assert any(
            r.header("authorization") == f"Bearer {SECRETS['counting-sim']}" for r in sim.requests
        )
    statuses = {Generation.objects.get(pk=g.pk).status for g in gens}
    assert statuses == {"completed", "failed"}

    client.force_login(owner)
    pages = ["/", "/gallery/", "/account/"] + [f"/gallery/{g.public_id}/" for g in gens]
    bodies = [client.get(url).content.decode() for url in pages]
    client.force_login(staff)
    admin_pages = [
        reverse("admin:generator_aimodel_change", args=[model.pk]),
        reverse("admin:generator_generation_changelist"),
    ]
    admin_pages += [reverse("admin:generator_generation_change", args=[g.pk]) for g in gens]
    for route, name, _ in walk(get_resolver()):
        if name.startswith("admin:") and "<" not in route and "(?P" not in route:
            admin_pages.append(concrete_path(route))
    for url in admin_pages:
        bodies.append(client.get(url).content.decode(errors="replace"))
    errors = " ".join(Generation.objects.values_list("error", flat=True))
    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records  # something was logged, so the grep below means something
    for key in [*SECRETS.values(), "EASELTESTSECRET"]:
        assert key not in logs, f"{key} in a log line"
        assert key not in errors, f"{key} in an error shown to users"
        for body in bodies:
            assert key not in body, f"{key} on a page"


# --- The CSP in a real browser ----------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_pages_run_their_scripts_under_the_csp_without_violations(
    live_server, page, owner, local_model, wide_model
):
    gen, _ = actions.submit(
        owner,
        {"model": local_model, "prompt": PAYLOAD, "options": {"size": "64x64"}, "num_images": 1},
    )
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", "pw-Secret-123")
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    # easel.js runs: choosing a model with aspect ratios hides the size field.
    page.select_option("select[name=model]", "local-wide")
    page.wait_for_selector("[data-option=sizes]", state="hidden")
    assert page.locator("[data-option=aspect_ratios]").is_visible()
    for url in ("/gallery/", f"/gallery/{gen.public_id}/", "/account/"):
        page.goto(f"{live_server.url}{url}")
        page.wait_for_load_state("load")
    assert page.csp_errors == []
    assert dialogs == []  # the hostile prompt never ran
