"""The ASGI application, served by uvicorn for the paths that wait (README "Serving": the sync
API requests and the live cards' events). Pages are served by gunicorn (config.wsgi).

A pool per process (DATABASE_POOL_SIZE, config/settings.py; 20 here unless told otherwise)
bounds the connections however many requests wait, and with it the async views' database work
runs on the event loop's few shared threads (generator/waiting.database).

Requests with an API key (the Meteron- and OpenAI-compatible endpoints, KEYED_PATHS) go to a
handler of their own with only the middleware such a request needs (KEYED_MIDDLEWARE: HTTPS
and security headers, metrics). Under ASGI each of Django's own middleware runs its hooks in a
thread hop (`MiddlewareMixin.__acall__`, ~0.25 ms of CPU each): 15 of a create request's 17
hops were sessions, CSRF, messages, framing and the pages' CSP, which a key-authenticated JSON
request never uses — 26.5 ms of CPU per create with them, 20.8 ms without (in-process, 150
creates, 2026-12-03). Everything else (the docs pages, the cards' events) keeps the full stack.
"""

import contextlib
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_POOL_SIZE", "20")

import django  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.urls import reverse  # noqa: E402

KEYED_PATHS = ("/api/images/", "/api/remaining/", "/v1/images/", "/v1/models")
KEYED_MIDDLEWARE = {
    "config.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
}


@contextlib.contextmanager
def _middleware(paths: list[str]):
    """settings.MIDDLEWARE is `paths` while a handler builds its chain (at import, one thread)."""
    full = settings.MIDDLEWARE
    settings.MIDDLEWARE = paths
    try:
        yield
    finally:
        settings.MIDDLEWARE = full


class KeyedApiHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        with _middleware([m for m in settings.MIDDLEWARE if m in KEYED_MIDDLEWARE]):
            super().load_middleware(is_async)


django.setup(set_prefix=False)
pages = ASGIHandler()
keyed = KeyedApiHandler()
# The URLconf, every view module and the reverse map now, not in each worker's first requests
# (py-spy: 0.3 s of the first burst's CPU per worker went there).
reverse("healthz")


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith(KEYED_PATHS):
        return await keyed(scope, receive, send)
    return await pages(scope, receive, send)
