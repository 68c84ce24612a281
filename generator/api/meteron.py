"""Meteron-compatible endpoints (seeds 000/001, PROTOCOLS.md §1): the same paths, headers and
shapes, so Meteron client code runs against Easel with only its base URL and key changed."""

from __future__ import annotations

import json
import re

from django.core import signing
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods

from generator import actions, limits, waiting
from generator.api.auth import ApiError, answering_refusals, caller
from generator.forms import GenerationForm
from generator.image_urls import attach_urls
from generator.models import AIModel, Generation

STATUS_OUT = {"queued": "pending", "running": "processing"}  # Meteron's words where they differ
STATUS_IN = {"pending": "queued", "processing": "running"}
PAGE_DEFAULT, PAGE_MAX = 20, 200
CURSOR_SALT = "easel.api.cursor"
IDEMPOTENCY = re.compile(r"[A-Za-z0-9_-]{8,64}")


def refusal(exc: ApiError) -> JsonResponse:
    """A refusal as `{"error": message}` with its status (Meteron's own error body is
    undocumented: PROTOCOLS.md §1 marks it unknown; this is the simulator's inferred shape)."""
    response = JsonResponse({"error": exc.message}, status=exc.status)
    for name, value in exc.headers.items():
        response[name] = value
    return response


meteron_errors = answering_refusals(refusal)


def _item(gen: Generation) -> dict:
    return {
        "id": gen.public_id,
        "modelId": gen.model.slug,
        "status": STATUS_OUT.get(gen.status, gen.status),
        "reason": gen.error,
        "prompt": gen.prompt,
        "createdAt": gen.created_at.isoformat(),
        "outputImages": [
            {
                "id": f"{gen.public_id}-{img.index}",
                "imageGenerationId": gen.public_id,
                "url": img.url,
            }
            for img in gen.images.all()
        ],
    }


def _items(gens: list[Generation], request: HttpRequest) -> list[dict]:
    images = [img for gen in gens for img in gen.images.all()]
    attach_urls(images, for_api=True)
    for img in images:  # absolute: a client has only the base URL it called
        img.url = request.build_absolute_uri(img.url)
    return [_item(gen) for gen in gens]


def _model(slug: str) -> AIModel:
    model = AIModel.objects.enabled().filter(slug=slug).first() if slug else None
    if model is None:
        raise ApiError(
            404 if slug else 400, f"Unknown model {slug!r}." if slug else "X-Model is required."
        )
    return model


@meteron_errors
@require_http_methods(["GET", "POST"])
async def generations(request: HttpRequest):
    """Async, so that an `X-Async: false` request waits (generator/waiting.py) without holding
    a thread under the ASGI server; the database work runs through waiting.database."""
    if request.method == "GET":
        return await waiting.database(_list, request)
    created = await waiting.database(_create, request)
    if isinstance(created, HttpResponse):
        return created
    pk, wait = created
    if wait:
        await waiting.settled(pk)
    return await waiting.database(_created, request, pk, wait)


def _create(request: HttpRequest) -> HttpResponse | tuple[int, bool]:
    """Validate and submit; the new generation's pk and whether to wait for it, or a refusal."""
    who = caller(request, request.headers.get("X-User") or request.GET.get("user"), need_user=True)
    slug = request.headers.get("X-Model") or request.GET.get("model") or ""
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The body must be JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    key = request.headers.get("Idempotency-Key", "")
    if key and not IDEMPOTENCY.fullmatch(key):
        raise ApiError(400, "Idempotency-Key must be 8 to 64 letters, digits, - or _.")
    if not slug:
        raise ApiError(400, "X-Model is required.")
    data = {
        "model": slug,
        "prompt": body.get("prompt", ""),
        "negative_prompt": body.get("negative_prompt", ""),
        "size": body.get("size", ""),
        "aspect_ratio": body.get("aspect_ratio", ""),
        "num_images": body.get("num_images", body.get("num_outputs", 1)),
        "seed": body.get("seed", ""),
        "idempotency_key": key,
    }
    data.update({k: v for k, v in body.items() if str(k).startswith("tpl_")})
    data = {k: ("" if v is None else str(v)) for k, v in data.items()}
    form = GenerationForm(data)  # the web form's own rules, one path (and its models query)
    if not form.is_valid():
        if "model" in form.errors:
            raise ApiError(404, f"Unknown model {slug!r}.")
        errors = {f: [str(e) for e in errs] for f, errs in form.errors.items()}
        first = next(iter(errors.values()))[0]
        return JsonResponse({"error": first, "errors": errors}, status=400)
    try:
        gen, _ = actions.submit(
            who.user,
            {**form.cleaned_data, "via_api": True, "priority": request.headers.get("X-Priority")},
        )
    except limits.LimitExceeded as exc:
        raise ApiError(exc.status, exc.message) from None
    wait = request.headers.get("X-Async", "false").strip().lower() != "true"
    return gen.pk, wait


def _created(request: HttpRequest, pk: int, waited: bool) -> JsonResponse:
    """The generation as it is now: 200 when final or asked not to wait, else 202 (still at
    work when EASEL_API_SYNC_TIMEOUT passed)."""
    gen = Generation.objects.select_related("model").prefetch_related("images").get(pk=pk)
    status = 200 if (gen.is_final or not waited) else 202
    return JsonResponse(_items([gen], request)[0], status=status)


def _list(request: HttpRequest):
    q = request.GET
    who = caller(request, q.get("user") or request.headers.get("X-User"), need_user=False)
    qs = Generation.objects.select_related("model").prefetch_related("images")
    qs = (
        qs.filter(user=who.user)
        if who.user is not None
        else qs.filter(user__service_owner=who.key.user)
    )
    if q.get("id"):
        gen = qs.filter(public_id=q["id"]).first()
        if gen is None:
            raise ApiError(404, "No such generation.")
        return JsonResponse(
            {
                "results": _items([gen], request),
                "pagination": {"pageSize": 1, "nextPageToken": "", "previousPageToken": ""},
            }
        )
    if q.get("model"):
        qs = qs.filter(model__slug=q["model"])
    if q.get("status"):
        status = STATUS_IN.get(q["status"], q["status"])
        if status not in Generation.Status.values:
            raise ApiError(400, f"Unknown status {q['status']!r}.")
        qs = qs.with_status(status)
    try:
        size = int(q.get("pageSize") or PAGE_DEFAULT)
    except ValueError:
        raise ApiError(400, "pageSize must be a number.") from None
    if not 1 <= size <= PAGE_MAX:
        raise ApiError(400, f"pageSize must be 1 to {PAGE_MAX}.")
    if q.get("pageToken"):
        try:
            stamp, pk = signing.loads(q["pageToken"], salt=CURSOR_SALT)
            created = parse_datetime(stamp)
            pk = int(pk)
        except (signing.BadSignature, ValueError, TypeError):
            raise ApiError(400, "pageToken is not valid.") from None
        if created is None:
            raise ApiError(400, "pageToken is not valid.")
        qs = qs.after_cursor(created, pk)
    page = list(qs.newest_first()[: size + 1])
    token = ""
    if len(page) > size:
        last = page[size - 1]
        token = signing.dumps([last.created_at.isoformat(), last.pk], salt=CURSOR_SALT)
    pagination = {"pageSize": size, "nextPageToken": token, "previousPageToken": ""}
    return JsonResponse({"results": _items(page[:size], request), "pagination": pagination})


@meteron_errors
@require_GET
def remaining(request: HttpRequest):
    who = caller(request, request.GET.get("user") or request.headers.get("X-User"), need_user=True)
    a = limits.allowance(who.user, _model(request.GET.get("model", "")))
    return JsonResponse({"remaining": a.left_today, "remainingThisMonth": a.left_month})
