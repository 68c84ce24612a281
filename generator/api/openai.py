"""OpenAI-compatible images endpoint (PROTOCOLS.md §4): `client.images.generate` of the
official `openai` package works against Easel with only `base_url` and the key changed."""

from __future__ import annotations

import base64
import json
import time
from functools import wraps

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from generator import actions, limits
from generator.api.auth import ApiError, caller
from generator.api.meteron import wait_until_final
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


def openai_errors(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except ApiError as exc:
            return _error(exc.status, exc.message, code=exc.code or None, headers=exc.headers)

    return csrf_exempt(wrapper)  # bearer keys, no cookies: CSRF does not apply


@openai_errors
@require_POST
def generations(request: HttpRequest):
    who = caller(request, None, need_user=True)  # `user` in the body is ignored: the key decides
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "The body must be JSON.")
    if not isinstance(body, dict):
        return _error(400, "The body must be a JSON object.")
    fmt = body.get("response_format") or "url"
    if fmt not in ("url", "b64_json"):
        return _error(400, "response_format must be url or b64_json.", param="response_format")
    slug = str(body.get("model") or "")
    if not AIModel.objects.enabled().filter(slug=slug).exists():
        return _error(
            404 if slug else 400,
            f"The model {slug!r} does not exist.",
            param="model",
            code="model_not_found",
        )
    data = {
        "model": slug,
        "prompt": body.get("prompt", ""),
        "size": body.get("size", ""),
        "num_images": body.get("n", 1),
        "idempotency_key": request.headers.get("Idempotency-Key", ""),
    }
    form = GenerationForm({k: "" if v is None else str(v) for k, v in data.items()})
    if not form.is_valid():
        field, errs = next(iter(form.errors.items()))
        param = {"num_images": "n", "idempotency_key": None}.get(field, field)
        return _error(400, str(errs[0]), param=param)
    try:
        gen, _ = actions.submit(who.user, form.cleaned_data)
    except limits.LimitExceeded as exc:
        retry = max(1, int(limits.period_bounds()["day_end"].timestamp() - time.time()))
        headers = {"Retry-After": str(retry)} if exc.status == 429 else {}
        return _error(exc.status, exc.message, code=exc.code, headers=headers)
    gen = wait_until_final(gen)
    gen = Generation.objects.select_related("model").prefetch_related("images").get(pk=gen.pk)
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
        attach_urls(images)
        data_out = [{"url": img.url} for img in images]
    else:
        data_out = []
        for img in images:
            with img.file.open("rb") as handle:
                data_out.append({"b64_json": base64.b64encode(handle.read()).decode()})
    return JsonResponse({"created": int(gen.created_at.timestamp()), "data": data_out})
