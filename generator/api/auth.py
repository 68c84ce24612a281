"""Who is calling: the bearer key, its rate limit, and the user it acts for (X-User)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.models import ApiKey

EXTERNAL_ID_MAX = 200


class ApiError(Exception):
    """An answer other than success; `status` and `message` go into the dialect's envelope."""

    def __init__(self, status: int, message: str, *, code: str = "", headers=None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = headers or {}


def answering_refusals(refusal: Callable[[ApiError], HttpResponse]):
    """A view decorator: every ApiError the view raises is answered by `refusal` (the dialect's
    own error body); sync and async views alike. Bearer keys, no cookies: CSRF does not apply."""

    def decorate(view):
        if iscoroutinefunction(view):

            @wraps(view)
            async def wrapper(request, *args, **kwargs):
                try:
                    return await view(request, *args, **kwargs)
                except ApiError as exc:
                    return refusal(exc)

        else:

            @wraps(view)
            def wrapper(request, *args, **kwargs):
                try:
                    return view(request, *args, **kwargs)
                except ApiError as exc:
                    return refusal(exc)

        return csrf_exempt(wrapper)

    return decorate


@dataclass
class Caller:
    key: ApiKey
    user: object  # the account that generates and owns the rows


def authenticate(request: HttpRequest) -> ApiKey:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    key = ApiKey.objects.for_token(token.strip()) if scheme.lower() == "bearer" else None
    if key is None or not key.user.is_active:
        raise ApiError(401, "Missing, unknown or revoked API key.", code="invalid_api_key")
    _rate_limit(key)
    key.record_use()
    return key


def _rate_limit(key: ApiKey) -> None:
    """A fixed one-minute window per key in the cache (EASEL_API_RATE_LIMIT requests)."""
    limit = settings.EASEL_API_RATE_LIMIT
    if not limit:
        return
    window = int(time.time() // 60)
    name = f"apirate:{key.pk}:{window}"
    cache.add(name, 0, timeout=120)
    try:
        count = cache.incr(name)
    except ValueError:  # evicted between add and incr: count this one as the first
        cache.set(name, 1, timeout=120)
        count = 1
    if count > limit:
        retry = 60 - int(time.time() % 60)
        raise ApiError(
            429,
            f"Rate limit of {limit} requests per minute reached for this key.",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(retry)},
        )


def acting_user(key: ApiKey, external_id: str | None):
    """A personal key acts as its owner (an X-User naming anyone else is refused); a service
    key acts for the end user named in X-User, or for nobody in particular (None) without one."""
    external_id = (external_id or "").strip()
    if key.kind == ApiKey.Kind.PERSONAL:
        owner = key.user
        if external_id and external_id not in {owner.email, owner.public_id}:
            raise ApiError(
                403,
                "A personal key acts only as its owner: X-User must be empty or your own "
                "e-mail or public id. Use a service key to act for your app's users.",
                code="user_not_allowed",
            )
        return owner
    if not external_id:
        return None
    if len(external_id) > EXTERNAL_ID_MAX or not external_id.isprintable():
        raise ApiError(400, f"X-User must be 1 to {EXTERNAL_ID_MAX} printable characters.")
    return key.service_user(external_id)


def caller(request: HttpRequest, external_id: str | None, *, need_user: bool) -> Caller:
    key = authenticate(request)
    user = acting_user(key, external_id)
    if user is None and need_user:
        raise ApiError(400, "A service key must name the end user in X-User.", code="missing_user")
    return Caller(key=key, user=user)
