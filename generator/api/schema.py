"""What both API dialects' django-ninja documents share (issue #17)."""

from ninja import NinjaAPI
from ninja.security import HttpBearer


class Bearer(HttpBearer):
    """Documents the scheme only: `generator.api.auth.caller` checks the key in each view, so
    each dialect keeps its own 401 body."""

    def __call__(self, request):
        return True

    def authenticate(self, request, token):  # pragma: no cover - never called, see __call__
        return token


def dialect_api(title: str, namespace: str) -> NinjaAPI:
    """One dialect's API: its document at schema/, Swagger UI at docs/, Bearer keys."""
    return NinjaAPI(
        title=title,
        version="1",
        urls_namespace=namespace,
        openapi_url="/schema/",
        docs_url="/docs/",
        auth=Bearer(),
    )
