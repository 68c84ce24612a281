"""The Meteron-compatible API as one django-ninja `NinjaAPI` (issue #17): the same views, now
also described by an OpenAPI document generated from this code, served at /api/schema/ with
Swagger UI at /api/docs/ (ninja's bundled static files, no CDN). The views still read headers,
query and body themselves, so the wire behaviour is unchanged; ninja's own validation errors are
answered in Meteron's `{"error": message}` shape."""

from django.http import JsonResponse
from ninja import Schema
from ninja.errors import ValidationError

from generator.api import meteron
from generator.api.schema import IDEMPOTENCY_KEY, dialect_api, header, json_body

api = dialect_api("Easel, Meteron-compatible images API", "api")


@api.exception_handler(ValidationError)
def _invalid(request, exc):
    return JsonResponse({"error": "The request is not valid."}, status=400)


class Error(Schema):
    """Meteron's refusal shape (PROTOCOLS.md §1; `errors` only on a form error)."""

    error: str
    errors: dict[str, list[str]] | None = None


class OutputImage(Schema):
    id: str
    imageGenerationId: str
    url: str


class Item(Schema):
    id: str
    modelId: str
    status: str
    reason: str
    prompt: str
    createdAt: str
    outputImages: list[OutputImage]


class Pagination(Schema):
    pageSize: int
    nextPageToken: str
    previousPageToken: str


class Page(Schema):
    results: list[Item]
    pagination: Pagination


class Remaining(Schema):
    remaining: int | None
    remainingThisMonth: int | None


ERRORS = {400: Error, 401: Error, 403: Error, 404: Error, 429: Error}

api.get(
    "/images/generations",
    url_name="generations",
    operation_id="list_generations",
    response={200: Page, **ERRORS},
)(meteron.generations)
api.post(
    "/images/generations",
    url_name="generations",
    operation_id="create_generation",
    response={200: Item, 202: Item, **ERRORS},
    openapi_extra={
        "parameters": [
            header("X-Model", "The model's slug (GET /v1/models lists them).", required=True),
            header("X-User", "A service key's end user (a personal key: empty or its owner)."),
            header("X-Async", "true: answer at once with id and status.", enum=["true", "false"]),
            header("X-Priority", "Capped by the user's own tier.", enum=["low", "medium", "high"]),
            IDEMPOTENCY_KEY,
        ],
        "requestBody": json_body(
            {
                "prompt": {"type": "string"},
                "negative_prompt": {"type": "string"},
                "size": {"type": "string", "examples": ["512x512"]},
                "aspect_ratio": {"type": "string", "examples": ["1:1"]},
                "num_images": {"type": "integer", "minimum": 1},
                "seed": {"type": "integer", "minimum": 0},
            },
            ["prompt"],
        ),
    },
)(meteron.generations)
api.get(
    "/remaining/generations",
    url_name="remaining",
    operation_id="remaining",
    response={200: Remaining, **ERRORS},
)(meteron.remaining)

app_name = "api"
urlpatterns = api.urls[0]
