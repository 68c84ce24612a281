"""Shared fixtures: an owner, a stranger, staff, models and a generation factory.

Tests that need a real service (PostgreSQL, Redis, a Celery worker, Chromium, an S3 server)
call `require(...)`: it skips locally when the service is missing, and fails under CI=true,
where a skip of such a test would hide that it never ran.
"""

from __future__ import annotations

import itertools
import os
from importlib import import_module
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.cache import caches

from config.celery import app as celery_app
from generator.models import AIModel, Generation, OutputImage

IN_CI = os.environ.get("CI", "").lower() == "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"

_counter = itertools.count()

# Shared simulator fixtures (test equipment).
pytest_plugins = ["tests.openai_fixtures"]


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


def uses_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    """Each test: its own media folder, an in-memory cache, tasks run in-process."""
    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = str(media)
    if settings.STORAGE_BACKEND == "local":
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(media)},
            },
        }
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    caches["default"].clear()  # locmem is one store per process: nothing leaks between tests
    settings.EASEL_LOCAL_PROVIDER_DELAY = 0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = eager


def make_user(django_user_model, *, verified: bool = True, **extra):
    """A signed-up user; with a verified e-mail address unless `verified=False` (models with
    limits need one)."""
    n = next(_counter)
    email = extra.pop("email", f"user{n}@example.com")
    user = django_user_model.objects.create_user(email=email, password="pw-Secret-123", **extra)
    if verified:
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


@pytest.fixture
def owner(django_user_model):
    return make_user(django_user_model, email="owner@example.com")


@pytest.fixture
def stranger(django_user_model):
    return make_user(django_user_model, email="stranger@example.com")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser(
        email="staff@example.com", password="pw-Secret-123"
    )


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def seeded_model(slug: str) -> AIModel:
    """A model from the seed migration (transactional tests flush the migration's rows)."""
    seed = import_module("generator.migrations.0002_seed_local_models")
    data = next(m for m in seed.LOCAL_MODELS if m["slug"] == slug)
    model, _ = AIModel.objects.get_or_create(
        slug=slug, defaults={**data, "provider": "local", "remote_id": slug}
    )
    return model


@pytest.fixture
def local_model(db):
    return seeded_model("local-sketch")


@pytest.fixture
def wide_model(db):
    return seeded_model("local-wide")


@pytest.fixture
def make_generation(local_model):
    def make(user, *, model=None, status=Generation.Status.COMPLETED, prompt="a red fox", **kw):
        model = model or local_model
        return Generation.objects.create(
            user=user,
            model=model,
            provider=model.provider,
            prompt=prompt,
            status=status,
            options=kw.pop("options", {"size": "512x512"}),
            tag_sent=user.public_id,
            **kw,
        )

    return make


def image_row(gen: Generation, index: int = 0, size: int = 64, folder: str = "t") -> OutputImage:
    """An unsaved output-image row pointing at object keys (no file behind them): for tests
    of listing, signing and caching, which never read the bytes."""
    return OutputImage(
        generation=gen,
        index=index,
        file=f"generations/{folder}/{gen.public_id}/{index}.png",
        thumbnail=f"generations/{folder}/{gen.public_id}/{index}_thumb.webp",
        width=size,
        height=size,
        bytes=100,
        content_type="image/png",
    )


# --- The prompt form and scheduled checks ---------------------------------------------------

FORM_DEFAULTS = {
    "prompt": "a lighthouse at dusk",
    "num_images": "1",
    "seed": "",
    "negative_prompt": "",
    "idempotency_key": "",
}


@pytest.fixture
def post_prompt(owner_client, django_capture_on_commit_callbacks):
    """Submit the prompt form as the owner's browser would; the dispatch runs on commit."""

    def submit(**fields):
        with django_capture_on_commit_callbacks(execute=True):
            return owner_client.post("/", {**FORM_DEFAULTS, **fields})

    return submit


@pytest.fixture
def scheduled_checks(monkeypatch):
    """Eager Celery ignores countdowns, so scheduled checks are collected here and driven by
    the test with `drive_checks`."""
    from generator import tasks

    calls: list[tuple[int, float, int]] = []
    monkeypatch.setattr(
        tasks,
        "_schedule_check",
        lambda gen, countdown, step=0: calls.append((gen.pk, countdown, step)),
    )
    return calls


def drive_checks(calls, timeout: float = 10.0, max_sleep: float = 0.2) -> None:
    """Run the collected checks in order (each may schedule the next) until none is left."""
    import time

    from generator import tasks

    end = time.monotonic() + timeout
    while calls and time.monotonic() < end:
        pk, countdown, step = calls.pop(0)
        time.sleep(min(countdown, max_sleep))
        tasks.check_generation(pk, step)


# --- Real processes: a Celery worker, headless Chromium ------------------------------------


@pytest.fixture
def start_worker(tmp_path, settings):
    """Start real `celery worker` processes on the test database and Redis; stopped after."""
    from tests.procs import Worker, redis_available

    require(uses_postgres(), "needs DATABASE_URL on PostgreSQL")
    require(redis_available(), "needs REDIS_URL with a running Redis")
    celery_app.conf.task_always_eager = False
    started = []

    def start(*, delay: float = 0.5, concurrency: int = 2, **env):
        settings.EASEL_LOCAL_PROVIDER_DELAY = delay  # the worker gets it through its env
        worker = Worker(tmp_path / f"worker{len(started)}.log", concurrency=concurrency, **env)
        worker.purge()
        started.append(worker.start())
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def worker(start_worker):
    return start_worker()


@pytest.fixture
def browser():
    require(os.path.exists(CHROMIUM), f"needs {CHROMIUM}")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


def new_page(browser):
    """A page in a browser context of its own (no cookies shared with another page);
    `page.csp_errors` collects Content-Security-Policy refusals."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    pg.csp_errors = []
    pg.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('Content Security Policy violation: ' + e.violatedDirective));"
    )
    pg.on("console", lambda m: "Content Security Policy" in m.text and pg.csp_errors.append(m.text))
    return pg


@pytest.fixture
def page(browser):
    """A fresh browser page (new_page); its context is closed after the test."""
    pg = new_page(browser)
    yield pg
    pg.context.close()


def shot(page, name: str) -> None:
    """A full-page screenshot into test-artifacts/screenshots/ (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
