"""Live cards by server-sent events (issue #17): `GET /events/cards?ids=<public id>,…`.

A page with cards still at work opens one EventSource here (static/js/easel.js) instead of
fetching each card every second. The stream sends a card's fresh HTML (`event: card`) each
time its generation changes — told by the same notifications as the API's waits
(generator/notify.py, generator/waiting.py) — and `event: end` when nothing it watches is at
work any more or after STREAM_SECONDS, when the page opens a new one for what is left.

Only under the ASGI server (uvicorn, README "Serving"), with Redis and `EASEL_LIVE_UPDATES=sse`:
a WSGI server would hold a thread for the whole stream (and Django's WSGI handler buffers an
async stream to its end), so there the endpoint is a 404 and the page polls, as it does in
the embedded default.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator

from django.conf import settings
from django.contrib.auth import get_user
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from generator import notify, waiting
from generator.cards import FIELDS as CARD_FIELDS
from generator.cards import card_version, render_card
from generator.models import Generation
from generator.waiting import released

MAX_IDS = 100
PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
STREAM_SECONDS = 55.0  # a proxy's idle or read timeout never cuts a stream mid-way
KEEPALIVE_SECONDS = 15.0


def available() -> bool:
    return settings.EASEL_LIVE_UPDATES == "sse" and notify.enabled()


@require_GET
async def cards(request: HttpRequest) -> HttpResponse:
    if not available() or not isinstance(request, ASGIRequest):
        raise Http404("Live updates are not served here; the page polls.")
    # Read in a released call: the stream lasts up to STREAM_SECONDS, and the request's own
    # thread would hold the connection of this sign-in lookup (a pool's place) all along.
    user = await waiting.database(_signed_in, request)
    if not user.is_authenticated:
        return HttpResponse("Sign in first.", status=403, content_type="text/plain")
    ids = [i for i in request.GET.get("ids", "").split(",") if PUBLIC_ID.fullmatch(i)]
    watched = await waiting.database(_watched, user.pk, ids[:MAX_IDS])
    response = StreamingHttpResponse(
        _stream(user.pk, watched), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
    return response


@released
def _signed_in(request: HttpRequest):
    return get_user(request)  # what request.auser() reads: the session, then the user


@released
def _watched(user_id: int, public_ids: list[str]) -> dict[int, str]:
    """The user's own generations among `public_ids` (another user's id is silently none)."""
    rows = Generation.objects.filter(user_id=user_id, public_id__in=public_ids)
    return dict(rows.values_list("pk", "public_id"))


@released
def _card(user_id: int, pk: int, sent: str) -> tuple[str, str, bool] | None:
    """The card's version, its HTML (empty when the version is still `sent`) and whether its
    generation is final; None if it is gone."""
    gen = (
        Generation.objects.select_related("model")
        .only(*CARD_FIELDS)
        .filter(pk=pk, user_id=user_id)
        .first()
    )
    if gen is None:
        return None
    version = card_version(gen)
    return version, ("" if version == sent else str(render_card(gen))), gen.is_final


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def _stream(user_id: int, watched: dict[int, str]) -> AsyncIterator[str]:
    end = time.monotonic() + STREAM_SECONDS
    yield "retry: 2000\n\n"
    async with notify.listen([notify.user_channel(user_id)]) as inbox:
        # Every watched card once: what changed before the subscription is not missed.
        due, sent = set(watched), {}
        recheck = time.monotonic() + inbox.recheck
        while watched and time.monotonic() < end:
            for pk in sorted(due):
                card = await waiting.database(_card, user_id, pk, sent.get(pk, ""))
                public_id = watched[pk]
                if card is None:
                    del watched[pk]
                    yield _event("gone", {"id": public_id})
                    continue
                sent[pk], html, final = card
                if final:
                    del watched[pk]
                if html:
                    yield _event("card", {"id": public_id, "html": html})
            if not watched:
                break
            now = time.monotonic()
            change = await inbox.next(min(end - now, KEEPALIVE_SECONDS, recheck - now))
            if change is not None:
                due = {change.pk} & set(watched)
                continue
            yield ": keep-alive\n\n"
            due = set()
            if time.monotonic() >= recheck:  # the fallback: look at every watched card again
                due, recheck = set(watched), time.monotonic() + inbox.recheck
        yield _event("end", {"left": sorted(watched.values())})
