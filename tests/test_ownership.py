"""The ownership matrix: every URL that takes an id, tried by a stranger, an anonymous visitor
and the owner; staff-only pages tried by a normal user.

The URL list is read from the URLconf, so a new id-taking URL without an entry in MATRIX (or a
reasoned entry in NOT_OWNED) makes `test_every_url_is_guarded` fail.
"""

from __future__ import annotations

import io

import pytest
from django.contrib import admin
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from PIL import Image

from generator import actions
from generator.models import Export, Generation, OutputImage

pytestmark = pytest.mark.django_db


def walk(resolver, prefix: str = "", ns: str = ""):
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            child_ns = ":".join(x for x in (ns, p.namespace) if x)
            yield from walk(p, prefix + str(p.pattern), child_ns)
        elif isinstance(p, URLPattern):
            name = f"{ns}:{p.name}" if ns else (p.name or "")
            takes_id = bool(p.pattern.regex.groupindex) or bool(p.pattern.regex.groups)
            yield prefix + str(p.pattern), name, takes_id


ALL_URLS = list(walk(get_resolver()))

# Per URL name: how to fill its arguments from the owner's generation, and which methods it takes.
# kwargs builders receive (gen) and return the URL kwargs; None = the URL takes no id.
MATRIX = {
    "generator:card": (lambda g: {"public_id": g.public_id}, ["GET"]),
    "gallery:detail": (lambda g: {"public_id": g.public_id}, ["GET"]),
    "gallery:delete": (lambda g: {"public_id": g.public_id}, ["GET", "POST"]),
    "gallery:star": (lambda g: {"public_id": g.public_id}, ["POST"]),
    "gallery:rerun": (lambda g: {"public_id": g.public_id}, ["POST"]),
    "gallery:retry": (lambda g: {"public_id": g.public_id}, ["POST"]),
    "gallery:share": (lambda g: {"public_id": g.public_id}, ["POST"]),
    "gallery:share_revoke": (lambda g: {"public_id": g.public_id}, ["POST"]),
    "gallery:input_image": (lambda g: {"public_id": g.public_id}, ["GET"]),
    "gallery:download": (lambda g: {"public_id": g.public_id, "index": 0}, ["GET"]),
    "gallery:image_file:original": (
        lambda g: {"public_id": g.public_id, "index": 0, "kind": "original"},
        ["GET"],
    ),
    "gallery:image_file:thumb": (
        lambda g: {"public_id": g.public_id, "index": 0, "kind": "thumb"},
        ["GET"],
    ),
    "gallery:image_file:download": (
        lambda g: {"public_id": g.public_id, "index": 0, "kind": "download"},
        ["GET"],
    ),
    # ZIP exports (issue #18): the owner's completed export of `g`'s gallery.
    "gallery:export": (lambda g: {"public_id": completed_export(g).public_id}, ["GET"]),
    "gallery:export_status": (lambda g: {"public_id": completed_export(g).public_id}, ["GET"]),
    "gallery:export_download": (lambda g: {"public_id": completed_export(g).public_id}, ["GET"]),
    # Signed-in pages without an id: anonymous → login (no stranger case).
    "gallery:export_start": (None, ["POST"]),
    "generator:home": (None, ["GET", "POST"]),
    "gallery:list": (None, ["GET"]),
    "accounts:profile": (None, ["GET"]),
    "accounts:usage": (None, ["GET"]),
    "accounts:keys": (None, ["GET", "POST"]),
    "accounts:delete": (None, ["GET"]),
}

# URLs that take an argument that is not a user's object, with the reason.
NOT_OWNED = {
    "account_confirm_email": "allauth: a signed, single-use e-mail confirmation key",
    "account_reset_password_from_key": "allauth: a signed, single-use reset token",
    "webhooks:receive": "public, csrf-exempt provider callbacks; verified by signature "
    "(see tests/test_bad_input.py)",
    "healthz": "public liveness probe: no user data",
    "metrics": "Prometheus scrape: a 404 unless EASEL_METRICS_TOKEN is set, then a bearer token; "
    "counts only, no user data (tests/test_metrics.py)",
    "readyz": "public readiness probe: per-dependency status, no user data or secrets",
    "api:generations": "bearer-key API; ownership tested in tests/test_api_meteron.py",
    "api:remaining": "bearer-key API; ownership tested in tests/test_api_meteron.py",
    "openai:generations": "bearer-key API; ownership tested in tests/test_api_openai.py",
    "openai:edits": "bearer-key API, acts as the key's owner only (tests/test_api_sdk.py)",
    "openai:models": "bearer-key API; lists enabled models, no user data",
    "api:openapi-json": "public OpenAPI document of the API, generated from the code (#17)",
    "api:openapi-view": "public Swagger UI page for that document (#17)",
    "api:api-root": "django-ninja's API root: no user data",
    "openai:openapi-json": "public OpenAPI document of the API, generated from the code (#17)",
    "openai:openapi-view": "public Swagger UI page for that document (#17)",
    "openai:api-root": "django-ninja's API root: no user data",
    "generator:live_cards": "ids in the query, not the path: only the signed-in user's own "
    "generations are watched, another's id is silently none (tests/test_live_events.py)",
    "share:page": "public by design: a share link's 192-bit token is the key; revoked, expired "
    "and unknown tokens are one 404 (tests/test_share_links.py)",
    "share:image": "the image of that public page, checked against the link on every request "
    "(tests/test_share_links.py)",
    "gallery:signed_file": "a signed, expiring token names the object; forged or expired is a "
    "404 (tests/test_api_sdk.py)",
}


def matrix_cases():
    cases = []
    for route, name, takes_id in ALL_URLS:
        if name.startswith("admin:") or name.startswith("account_") and not takes_id:
            continue
        # allauth's own sign-in-with-a-provider pages (issue #18 SSO): the session's own flow,
        # no object id (tests/test_sso_browser.py drives them).
        social = ("socialaccount_", "openid_connect_")
        if not takes_id and (name.startswith(social) or route.startswith("accounts/social/")):
            continue
        if name in NOT_OWNED:
            continue
        if name == "gallery:image_file":
            cases += [f"{name}:{kind}" for kind in ("original", "thumb", "download")]
        else:
            cases.append(name or route)
    return cases


def completed_export(gen: Generation) -> Export:
    """The owner's export, completed, with its archive in storage (made once per test)."""
    export = Export.objects.filter(user=gen.user).first()
    if export is None:
        export = Export.start(gen.user, {}, "", 1)
        export.claim()
        name = default_storage.save(export.storage_name, ContentFile(b"PK\x05\x06" + bytes(18)))
        export.complete(name, 22, 1, 1)
    return export


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def owned(owner, local_model, django_capture_on_commit_callbacks):
    """A completed generation of the owner's, with an image, a thumbnail and an input image."""
    with django_capture_on_commit_callbacks(execute=True):
        gen, _ = actions.submit(
            owner,
            {"model": local_model, "prompt": "mine", "options": {"size": "64x64"}, "num_images": 1},
        )
    gen.refresh_from_db()
    assert gen.status == Generation.Status.COMPLETED
    gen.input_image.save("in.png", ContentFile(png()), save=True)
    return gen


def url_for(case: str, gen: Generation) -> str:
    build, _ = MATRIX[case]
    name = case.rsplit(":", 1)[0] if case.startswith("gallery:image_file:") else case
    return reverse(name, kwargs=build(gen) if build else None)


def snapshot(gen: Generation):
    return (
        Generation.objects.count(),
        OutputImage.objects.count(),
        Generation.objects.filter(pk=gen.pk).values_list("favorite", "status").first(),
    )


@pytest.mark.parametrize("case", matrix_cases())
def test_every_url_is_guarded(case, client, owner, stranger, owned):
    assert case in MATRIX, (
        f"{case} is not in the ownership matrix: add how to call it (or a reason in NOT_OWNED)"
    )
    build, methods = MATRIX[case]
    url = url_for(case, owned)
    login = reverse("account_login")
    for method in methods:
        before = snapshot(owned)
        # Anonymous: the login page, and nothing changes.
        client.logout()
        response = client.generic(method, url)
        assert response.status_code == 302, (method, url, response.status_code)
        assert response["Location"].startswith(f"{login}?next="), response["Location"]
        assert snapshot(owned) == before
        if build is None:
            continue
        # A stranger: 404 (never 403), and nothing changes.
        client.force_login(stranger)
        response = client.generic(method, url)
        assert response.status_code == 404, (method, url, response.status_code)
        assert snapshot(owned) == before
    if build is not None:
        # The owner gets through, so the 404 above was the ownership check and not a typo.
        client.force_login(owner)
        response = client.generic(methods[0], url)
        assert response.status_code not in (403, 404), (url, response.status_code)
        assert response.status_code < 500


def admin_urls(gen: Generation) -> list[str]:
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        meta = model._meta
        urls.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    urls.append(reverse("admin:generator_generation_change", args=[gen.pk]))
    urls.append(reverse("admin:accounts_user_change", args=[gen.user.pk]))
    return urls


def test_staff_only_pages_refuse_a_normal_user(client, owner, staff, owned):
    client.force_login(owner)
    for url in admin_urls(owned):
        response = client.get(url)
        assert response.status_code == 302, (url, response.status_code)
        assert response["Location"].startswith(reverse("admin:login")), url
    client.force_login(staff)
    assert (
        client.get(reverse("admin:generator_generation_change", args=[owned.pk])).status_code == 200
    )


def test_a_stranger_gets_no_image_bytes_even_when_guessing_indexes(client, stranger, owned):
    client.force_login(stranger)
    for index in range(3):
        for kind in ("original", "thumb", "download"):
            url = reverse("gallery:image_file", args=[owned.public_id, index, kind])
            assert client.get(url).status_code == 404
