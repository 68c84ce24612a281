"""The bad-input table: one row per bad input, each with the answer expected and the proof that
nothing was created, sent or changed. No row may produce a 500.

Rows cover the prompt form (prompt, options, uploads), the gallery's filters and cursors
(forged, truncated, another user's), webhooks (bad JSON, bad signature, huge body), headers
and management commands.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from PIL import Image

from gallery.forms import make_cursor
from generator.models import AIModel, Export, Generation, OutputImage

pytestmark = pytest.mark.django_db


def png(size=(32, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


FORM = {
    "model": "local-sketch",
    "prompt": "a quiet harbour",
    "size": "512x512",
    "num_images": "1",
    "seed": "",
    "negative_prompt": "",
    "idempotency_key": "",
}


def form(**changes) -> dict:
    data = {**FORM, **changes}
    return {k: v for k, v in data.items() if v is not None}


@dataclass
class Ctx:
    client: Client
    owner: object
    stranger: object
    mine: Generation
    theirs: Generation


@dataclass
class Row:
    id: str
    do: Callable[[Ctx], object]
    expect: tuple = (400,)
    contains: str = ""  # words the answer shows (a form error a person can read)
    absent: list[str] = field(default_factory=list)  # must not appear (another user's data)


def post_home(**changes):
    return lambda c: c.client.post("/", form(**changes))


def upload_home(upload, model="local-edit", **changes):
    return lambda c: c.client.post(
        "/", {**form(model=model, size="512x512", **changes), "input_image": upload()}
    )


def gallery(query: str | Callable[[Ctx], str]):
    return lambda c: c.client.get("/gallery/?" + (query(c) if callable(query) else query))


def hook(provider="replicate", body=b"{}", **headers):
    return lambda c: c.client.generic(
        "POST", f"/webhooks/{provider}/", body, content_type="application/json", **headers
    )


def command(*args, **kwargs):
    def run(c):
        with pytest.raises(CommandError) as info:
            call_command(*args, **kwargs)
        return info.value

    return run


WEBHOOK_SECRET = "whsec_dGVzdHNlY3JldA=="


def signed_hook(body: bytes, *, age: int = 0, signed_body: bytes | None = None):
    """A Replicate-style webhook signed with the configured secret (Standard Webhooks)."""

    def run(c):
        import time

        from generator.providers.replicate import sign

        stamp = str(int(time.time()) - age)
        signature = sign(WEBHOOK_SECRET, "msg_1", stamp, signed_body or body)
        return c.client.generic(
            "POST",
            "/webhooks/replicate/",
            body,
            content_type="application/json",
            HTTP_WEBHOOK_ID="msg_1",
            HTTP_WEBHOOK_TIMESTAMP=stamp,
            HTTP_WEBHOOK_SIGNATURE=f"v1,{signature}",
        )

    return run


def forged_cursor(c):
    value = make_cursor(c.mine)
    raw, sig = value.rsplit(":", 1)
    return "cursor=" + raw.replace(str(c.mine.pk), str(c.mine.pk + 1)) + ":" + sig


ROWS = [
    # --- the prompt form ------------------------------------------------------------------
    Row("form-empty-prompt", post_home(prompt=""), contains="Write a prompt first"),
    Row("form-whitespace-prompt", post_home(prompt="   \n  "), contains="Write a prompt first"),
    Row("form-prompt-too-long", post_home(prompt="x" * 1001), contains="at most 1000"),
    Row("form-nul-in-prompt", post_home(prompt="fox\x00"), contains="Null characters"),
    Row("form-unknown-model", post_home(model="gpt-99"), contains="not available"),
    Row("form-disabled-model", post_home(model="switched-off"), contains="not available"),
    Row("form-model-missing", post_home(model=None)),
    Row("form-size-not-offered", post_home(size="999x999"), contains="does not offer size"),
    Row("form-size-garbage", post_home(size="' OR 1=1 --"), contains="does not offer size"),
    Row("form-size-too-long", post_home(size="9" * 40)),
    Row(
        "form-size-for-ratio-model",
        post_home(model="local-wide", size="512x512"),
        contains="does not take a size",
    ),
    Row("form-ratio-not-offered", post_home(model="local-wide", size="", aspect_ratio="7:3")),
    Row("form-zero-images", post_home(num_images="0")),
    Row("form-too-many-images", post_home(num_images="99")),
    Row("form-images-not-a-number", post_home(num_images="two")),
    Row("form-negative-seed", post_home(seed="-1")),
    Row("form-seed-too-big", post_home(seed=str(2**32))),
    Row("form-seed-not-a-number", post_home(seed="abc")),
    Row(
        "form-negative-prompt-unsupported",
        post_home(model="local-wide", size="", negative_prompt="blur"),
    ),
    Row("form-tampered-idempotency-key", post_home(idempotency_key="<script>x</script>")),
    Row("form-idempotency-key-too-long", post_home(idempotency_key="a" * 65)),
    Row(
        "form-upload-not-an-image",
        upload_home(lambda: SimpleUploadedFile("room.png", b"not an image at all", "image/png")),
    ),
    Row(
        "form-upload-truncated-png",
        upload_home(lambda: SimpleUploadedFile("room.png", png()[:40], "image/png")),
    ),
    Row(
        "form-upload-svg",
        upload_home(
            lambda: SimpleUploadedFile(
                "room.svg",
                b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
                "image/svg+xml",
            )
        ),
    ),
    Row(
        "form-upload-to-model-without-input",
        upload_home(
            lambda: SimpleUploadedFile("room.png", png(), "image/png"), model="local-sketch"
        ),
        contains="does not take an input image",
    ),
    Row(
        "form-upload-missing-where-needed", post_home(model="local-edit"), contains="needs a photo"
    ),
    # --- the gallery's filters and cursors ------------------------------------------------
    Row("gallery-bad-status", gallery("status=exploded"), contains="not a status"),
    Row("gallery-unknown-model", gallery("model=nope"), contains="There is no model"),
    Row("gallery-page-size-zero", gallery("page_size=0")),
    Row("gallery-page-size-huge", gallery("page_size=100000")),
    Row("gallery-page-size-text", gallery("page_size=lots")),
    Row("gallery-cursor-garbage", gallery("cursor=AAAA"), contains="broken or was changed"),
    Row(
        "gallery-cursor-truncated",
        gallery(lambda c: "cursor=" + make_cursor(c.mine)[:-4]),
        contains="broken or was changed",
    ),
    Row("gallery-cursor-forged", gallery(forged_cursor), contains="broken or was changed"),
    Row("gallery-cursor-too-long", gallery("cursor=" + "A" * 5000)),
    Row(
        "gallery-cursor-other-sort",
        gallery(lambda c: "sort=oldest&cursor=" + make_cursor(c.mine)),
        contains="another sort order",
    ),
    # Another user's (valid, signed) position only pages through the viewer's own rows.
    Row(
        "gallery-cursor-from-another-user",
        gallery(lambda c: "cursor=" + make_cursor(c.theirs)),
        expect=(200,),
        absent=["their secret prompt"],
    ),
    Row("gallery-bad-date", gallery("from=2025-13-45"), contains="Dates look like"),
    Row(
        "gallery-dates-reversed",
        gallery("from=2025-02-01&to=2025-01-01"),
        contains="before the start date",
    ),
    Row("gallery-search-too-long", gallery("q=" + "x" * 201)),
    Row("gallery-starred-bad", gallery("starred=2")),
    # --- "Download these as ZIP" (issue #18): the same filter form, as a POST -------------
    Row(
        "export-bad-status",
        lambda c: c.client.post("/gallery/exports/", {"status": "exploded"}),
        contains="not a status",
    ),
    Row(
        "export-unknown-model",
        lambda c: c.client.post("/gallery/exports/", {"model": "nope"}),
        contains="There is no model",
    ),
    Row(
        "export-dates-reversed",
        lambda c: c.client.post("/gallery/exports/", {"from": "2025-02-01", "to": "2025-01-01"}),
        contains="before the start date",
    ),
    Row(
        "export-unknown-id",
        lambda c: c.client.get("/gallery/exports/doesnotexist/status/"),
        expect=(404,),
    ),
    # --- ids in paths ---------------------------------------------------------------------
    Row("detail-unknown-id", lambda c: c.client.get("/gallery/g_doesnotexist/"), expect=(404,)),
    Row(
        "detail-another-users-id",
        lambda c: c.client.get(f"/gallery/{c.theirs.public_id}/"),
        expect=(404,),
        absent=["their secret prompt"],
    ),
    Row(
        "card-path-traversal",
        lambda c: c.client.get("/g/..%2F..%2Fetc%2Fpasswd/card/"),
        expect=(404,),
    ),
    Row(
        "image-bad-kind",
        lambda c: c.client.get(f"/gallery/{c.mine.public_id}/images/0/evil/"),
        expect=(404,),
    ),
    Row(
        "image-index-out-of-range",
        lambda c: c.client.get(f"/gallery/{c.mine.public_id}/images/99/original/"),
        expect=(404,),
    ),
    Row(
        "delete-another-users",
        lambda c: c.client.post(f"/gallery/{c.theirs.public_id}/delete/"),
        expect=(404,),
    ),
    # --- webhooks ---------------------------------------------------------------------------
    Row("webhook-bad-json", hook(body=b"{not json"), expect=(400, 401)),
    Row("webhook-json-array", hook(body=b"[1,2,3]"), expect=(400, 401)),
    Row(
        "webhook-bad-signature",
        hook(
            body=b'{"id": "abc", "status": "succeeded"}',
            HTTP_WEBHOOK_ID="msg_1",
            HTTP_WEBHOOK_TIMESTAMP="1",
            HTTP_WEBHOOK_SIGNATURE="v1,AAAA",
        ),
        expect=(401,),
    ),
    Row("webhook-no-signature", hook(body=b'{"id": "abc"}'), expect=(401,)),
    Row(
        "webhook-huge-body", hook(body=b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}'), expect=(413,)
    ),
    Row(
        "webhook-signed-unknown-job",
        signed_hook(b'{"id": "nosuchjob", "status": "succeeded"}'),
        expect=(404,),
    ),
    Row(
        "webhook-replayed-an-hour-later",
        signed_hook(b'{"id": "nosuchjob", "status": "succeeded"}', age=3600),
        expect=(401,),
    ),
    Row(
        "webhook-signature-for-another-body",
        signed_hook(b'{"id": "nosuchjob", "status": "succeeded"}', signed_body=b'{"id": "other"}'),
        expect=(401,),
    ),
    Row("webhook-unknown-provider", hook(provider="nosuchprovider"), expect=(404,)),
    Row("webhook-provider-without-webhooks", hook(provider="local"), expect=(404,)),
    Row("webhook-get", lambda c: c.client.get("/webhooks/replicate/"), expect=(405,)),
    # --- headers ----------------------------------------------------------------------------
    Row("header-no-csrf-token", lambda c: _csrf_client(c).post("/", form()), expect=(403,)),
    Row("header-bad-host", lambda c: c.client.get("/", HTTP_HOST="evil.example"), expect=(400,)),
    Row(
        "header-broken-multipart",
        lambda c: c.client.generic(
            "POST",
            "/",
            b'--xx\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhi',
            content_type="multipart/form-data; boundary=",
        ),
        expect=(400,),
    ),
    Row(
        "header-htmx-card-unknown",
        lambda c: c.client.get("/g/g_nope/card/", HTTP_HX_REQUEST="true"),
        expect=(404,),
    ),
    # --- management commands -----------------------------------------------------------------
    Row("command-unknown-option", command("storage_maintenance", "--explode")),
    Row("command-unexpected-argument", command("storage_maintenance", "everything")),
    Row("command-unknown-command", command("no_such_command")),
    Row("command-createsuperuser-no-email", command("createsuperuser", "--noinput")),
]


def _csrf_client(c: Ctx) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(c.owner)
    return client


def state():
    return (
        Generation.objects.count(),
        OutputImage.objects.count(),
        list(Generation.objects.order_by("pk").values_list("status", "favorite", "prompt")),
        AIModel.objects.count(),
        Export.objects.count(),
    )


@pytest.fixture
def ctx(client, owner, stranger, local_model, wide_model, make_generation):
    AIModel.objects.create(slug="switched-off", name="Off", provider="local", enabled=False)
    AIModel.objects.create(
        slug="local-edit",
        name="Local Edit",
        provider="local",
        remote_id="local-edit",
        options={"sizes": ["512x512"], "input_image": True, "max_images": 1},
    )
    mine = make_generation(owner, prompt="my harbour")
    theirs = make_generation(stranger, prompt="their secret prompt")
    client.force_login(owner)
    return Ctx(client, owner, stranger, mine, theirs)


def test_the_table_has_at_least_forty_rows():
    assert len(ROWS) >= 40
    assert len({r.id for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_refused_and_changes_nothing(row, ctx, settings):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "replicate": {
            **settings.EASEL_PROVIDERS.get("replicate", {}),
            "webhook_secret": WEBHOOK_SECRET,
        },
    }
    before = state()
    with (
        mock.patch("generator.tasks.run_generation.apply_async") as run,
        mock.patch("generator.tasks.check_generation.apply_async") as check,
    ):
        result = row.do(ctx)
    if isinstance(result, CommandError):
        assert str(result)  # a clear message, not a traceback
    else:
        assert result.status_code != 500
        assert result.status_code in row.expect, (row.id, result.status_code)
        body = result.content.decode(errors="replace")
        if row.contains:
            assert row.contains in body, (row.id, body[:2000])
        for text in row.absent:
            assert text not in body
    assert state() == before, "something was created or changed"
    run.assert_not_called()
    check.assert_not_called()
