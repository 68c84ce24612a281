"""The OpenAI-compatible API as one django-ninja `NinjaAPI` (issue #17): the same views, now
also described by an OpenAPI document generated from this code, served at /v1/schema/ with
Swagger UI at /v1/docs/ (ninja's bundled static files, no CDN). Request bodies are still read by
the views themselves (so the wire behaviour is unchanged); ninja's own validation errors are
answered in OpenAI's `{"error": {...}}` envelope."""

from ninja import Schema
from ninja.errors import ValidationError

from generator.api import openai
from generator.api.auth import ApiError
from generator.api.schema import IDEMPOTENCY_KEY, dialect_api, json_body

api = dialect_api("Easel, OpenAI-compatible images API", "openai")


@api.exception_handler(ValidationError)
def _invalid(request, exc):
    return openai._error(400, "The request is not valid.")


@api.exception_handler(ApiError)
def _api_error(request, exc):
    return openai._error(exc.status, exc.message, code=exc.code or None, headers=exc.headers)


class ErrorBody(Schema):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class Error(Schema):
    """OpenAI's error envelope (PROTOCOLS.md §4), for every non-2xx answer."""

    error: ErrorBody


class Model(Schema):
    id: str
    object: str
    created: int
    owned_by: str


class ModelList(Schema):
    object: str
    data: list[Model]


class Image(Schema):
    url: str | None = None
    b64_json: str | None = None


class Images(Schema):
    created: int
    data: list[Image]


ERRORS = {400: Error, 401: Error, 403: Error, 404: Error, 429: Error}
IMAGE_ERRORS = {**ERRORS, 402: Error, 504: Error}

JSON_BODY = {
    "parameters": [IDEMPOTENCY_KEY],
    "requestBody": json_body(
        {
            "model": {"type": "string", "description": "An Easel model's slug."},
            "prompt": {"type": "string"},
            "n": {"type": "integer", "minimum": 1},
            "size": {"type": "string", "examples": ["512x512"]},
            "response_format": {"type": "string", "enum": ["url", "b64_json"]},
            "user": {"type": "string", "description": "Ignored: the key decides."},
        },
        ["model", "prompt"],
    ),
}
MULTIPART_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "model": {"type": "string"},
                        "prompt": {"type": "string"},
                        "n": {"type": "integer", "minimum": 1},
                        "response_format": {"type": "string", "enum": ["url", "b64_json"]},
                    },
                    "required": ["image", "model"],
                }
            }
        }
    }
}

api.get("/models", url_name="models", response={200: ModelList, **ERRORS})(openai.models)
api.post(
    "/images/generations",
    url_name="generations",
    response={200: Images, **IMAGE_ERRORS},
    openapi_extra=JSON_BODY,
)(openai.generations)
api.post(
    "/images/edits",
    url_name="edits",
    response={200: Images, **IMAGE_ERRORS},
    openapi_extra={"parameters": [IDEMPOTENCY_KEY], **MULTIPART_BODY},
)(openai.edits)

app_name = "openai"
urlpatterns = api.urls[0]
