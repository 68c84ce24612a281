"""OpenAI-compatible images endpoint (PROTOCOLS.md §4): `client.images.generate` of the
official `openai` package works against Easel with only `base_url` and the key changed."""

from __future__ import annotations

import base64
import json
import time

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from generator import actions, limits, waiting
from generator.api.auth import ApiError, answering_refusals, caller
from generator.forms import GenerationForm
from generator.image_urls import attach_urls
from generator.models import AIModel, Generation

TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def _error(status: int, message: str, *, param=None, code=None, headers=None) -> JsonResponse:
    body = {
        "error": {
            "message": message,
            "type": TYPES.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def refusal(exc: ApiError) -> JsonResponse:
    return _error(exc.status, exc.message, code=exc.code or None, headers=exc.headers)


openai_errors = answering_refusals(refusal)


@openai_errors
@require_GET
def models(request: HttpRequest):
    """`GET /v1/models` (`client.models.list()`): the models this key may use."""
    caller(request, None, need_user=True)
    rows = AIModel.objects.enabled().order_by("position", "name")
    data = [
        {
            "id": m.slug,
            "object": "model",
            "created": int(m.created_at.timestamp()),
            "owned_by": "easel",
        }
        for m in rows
    ]
    return JsonResponse({"object": "list", "data": data})


@openai_errors
@require_POST
async def generations(request: HttpRequest):
    """`POST /v1/images/generations` (`client.images.generate`), JSON."""
    return await _answer(request, await waiting.database(_start_generation, request))


@openai_errors
@require_POST
async def edits(request: HttpRequest):
    """`POST /v1/images/edits` (`client.images.edit`), multipart: the photo in `image` (or the
    first `image[]`), for models that take an input photo; the rest as for generations."""
    return await _answer(request, await waiting.database(_start_edit, request))


async def _answer(request: HttpRequest, started: HttpResponse | tuple[int, str]) -> HttpResponse:
    """Wait for what `_create` submitted (generator/waiting.py: under the ASGI server this holds
    no thread), then answer with its images; a refusal is answered as it is."""
    if isinstance(started, HttpResponse):
        return started
    pk, fmt = started
    await waiting.settled(pk)
    return await waiting.database(_result, request, pk, fmt)


def _start_generation(request: HttpRequest):
    who = caller(request, None, need_user=True)  # `user` in the body is ignored: the key decides
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "The body must be JSON.")
    if not isinstance(body, dict):
        return _error(400, "The body must be a JSON object.")
    return _create(request, who, body, None)


def _start_edit(request: HttpRequest):
    who = caller(request, None, need_user=True)
    upload = request.FILES.get("image") or request.FILES.get("image[]")
    if upload is None:
        return _error(400, "Send the photo as the multipart file field image.", param="image")
    return _create(request, who, request.POST.dict(), {"input_image": upload})


def _create(request: HttpRequest, who, body: dict, files: dict | None):
    """One path for both: the web form's rules, the same ledger, the same idempotency. The new
    generation's pk and the response format asked for, or a refusal."""
    fmt = body.get("response_format") or "url"
    if fmt not in ("url", "b64_json"):
        return _error(400, "response_format must be url or b64_json.", param="response_format")
    slug = str(body.get("model") or "")
    if not slug:
        return _no_model(slug)
    data = {
        "model": slug,
        "prompt": body.get("prompt", ""),
        "size": body.get("size", ""),
        "num_images": body.get("n", 1),
        "idempotency_key": request.headers.get("Idempotency-Key", ""),
        # A prompt template's choices (RoomFix-style models), e.g. extra_body={"tpl_theme": …}.
        **{k: v for k, v in body.items() if str(k).startswith("tpl_")},
    }
    form = GenerationForm({k: "" if v is None else str(v) for k, v in data.items()}, files)
    if not form.is_valid():
        if "model" in form.errors:  # the form's one models query says it: no query of our own
            return _no_model(slug)
        field, errs = next(iter(form.errors.items()))
        param = {"num_images": "n", "idempotency_key": None, "input_image": "image"}.get(
            field, field
        )
        return _error(400, str(errs[0]), param=param)
    try:
        gen, _ = actions.submit(who.user, {**form.cleaned_data, "via_api": True})
    except limits.LimitExceeded as exc:
        retry = max(1, int(limits.period_bounds()["day_end"].timestamp() - time.time()))
        headers = {"Retry-After": str(retry)} if exc.status == 429 else {}
        return _error(exc.status, exc.message, code=exc.code, headers=headers)
    return gen.pk, fmt


def _no_model(slug: str) -> JsonResponse:
    """No model asked for (400), or none enabled by that name (404)."""
    return _error(
        404 if slug else 400,
        f"The model {slug!r} does not exist.",
        param="model",
        code="model_not_found",
    )


def _result(request: HttpRequest, pk: int, fmt: str) -> JsonResponse:
    """The generation's images in the asked format, or why there are none."""
    gen = Generation.objects.select_related("model").prefetch_related("images").get(pk=pk)
    if gen.status != Generation.Status.COMPLETED:
        if gen.is_final:
            return _error(
                400, gen.error or f"The generation was {gen.status}.", code="generation_failed"
            )
        return _error(
            504, f"Still {gen.status}; see it in your gallery ({gen.public_id}).", code="timeout"
        )
    images = list(gen.images.all())
    if fmt == "url":
        attach_urls(images, for_api=True)
        data_out = [{"url": request.build_absolute_uri(img.url)} for img in images]
    else:
        data_out = []
        for img in images:
            with img.file.open("rb") as handle:
                data_out.append({"b64_json": base64.b64encode(handle.read()).decode()})
    return JsonResponse({"created": int(gen.created_at.timestamp()), "data": data_out})
