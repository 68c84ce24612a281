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


def header(name: str, description: str, *, required: bool = False, **schema) -> dict:
    """An OpenAPI header parameter (the views read headers themselves; this documents them)."""
    return {
        "in": "header",
        "name": name,
        "required": required,
        "description": description,
        "schema": {"type": "string", **schema},
    }


IDEMPOTENCY_KEY = header(
    "Idempotency-Key",
    "The same key again returns the first request's generation instead of a new one.",
    pattern="^[A-Za-z0-9_-]{8,64}$",
)


def json_body(properties: dict, required: list[str]) -> dict:
    """A JSON request body; other properties (a template's `tpl_*` choices) are allowed."""
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {"application/json": {"schema": schema}}}
