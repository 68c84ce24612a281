"""The studio: live cards, a gallery that finds things, stars, re-run/retry/reuse, variants,
and RoomFix-style input images with prompt templates."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from gallery.forms import make_cursor
from generator.models import AIModel, Generation

pytestmark = pytest.mark.django_db
S = Generation.Status


@pytest.fixture
def room_model(db):
    """A RoomFix-style model: a photo, a theme and a room type (made here, not seeded: see
    README "Using Easel" for creating one in the admin)."""
    return AIModel.objects.create(
        slug="local-room",
        name="Local Room",
        provider="local",
        remote_id="local-room",
        options={"sizes": ["256x256"], "input_image": True, "seed": True, "max_images": 2},
        prompt_template="a {theme} {room}",
        template_choices={"theme": ["Modern", "Vintage"], "room": ["kitchen", "living room"]},
    )


def photo_bytes(fmt="JPEG", size=(64, 32), exif_orientation=None, colour=(200, 30, 30)) -> bytes:
    image = Image.new("RGB", size, colour)
    out = io.BytesIO()
    kwargs = {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation  # Orientation
        exif[0x010F] = "SecretCam"  # Make
        kwargs["exif"] = exif
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


# --- gallery: search, dates, sort, stars, counts ---------------------------------------


def test_search_finds_prompts_case_insensitively(owner_client, owner, make_generation):
    fox = make_generation(owner, prompt="A Red FOX in snow")
    make_generation(owner, prompt="a blue whale")
    got = owner_client.get("/gallery/?q=fox").context["page"]
    assert [g.pk for g in got] == [fox.pk]


def test_date_range_includes_both_end_days(owner_client, owner, make_generation):
    now = timezone.now().replace(hour=12)
    old = make_generation(owner, prompt="old", created_at=now - timedelta(days=10))
    mid = make_generation(owner, prompt="mid", created_at=now - timedelta(days=5))
    new = make_generation(owner, prompt="new", created_at=now)
    start = (now - timedelta(days=5)).date().isoformat()
    end = now.date().isoformat()
    got = owner_client.get(f"/gallery/?from={start}&to={end}").context["page"]
    assert {g.pk for g in got} == {mid.pk, new.pk}
    got = owner_client.get(f"/gallery/?to={(now - timedelta(days=6)).date()}").context["page"]
    assert [g.pk for g in got] == [old.pk]


@pytest.mark.parametrize(
    "query",
    [
        "from=yesterday",
        "to=2025-13-01",
        "from=2025-02-02&to=2025-02-01",
        "sort=sideways",
        "starred=yes",
        "q=" + "x" * 201,
    ],
)
def test_bad_new_filters_are_a_clear_400(owner_client, query):
    response = owner_client.get(f"/gallery/?{query}")
    assert response.status_code == 400
    assert b"That filter does not work" in response.content


def test_oldest_first_walks_every_row_once_with_its_own_cursor(
    owner_client, owner, make_generation
):
    now = timezone.now()
    rows = [make_generation(owner, created_at=now - timedelta(seconds=i // 2)) for i in range(7)]
    seen, url = [], "/gallery/?sort=oldest&page_size=3"
    while url:
        response = owner_client.get(url)
        assert response.status_code == 200
        seen += [g.pk for g in response.context["page"]]
        cursor = response.context["next_cursor"]
        url = f"/gallery/?sort=oldest&page_size=3&cursor={cursor}" if cursor else None
    assert seen == [g.pk for g in sorted(rows, key=lambda g: (g.created_at, g.pk))]


def test_a_cursor_cannot_be_replayed_in_the_other_sort(owner_client, owner, make_generation):
    gen = make_generation(owner)
    cursor = make_cursor(gen, "newest")
    assert owner_client.get(f"/gallery/?sort=oldest&cursor={cursor}").status_code == 400
    assert owner_client.get(f"/gallery/?cursor={cursor}").status_code == 200


def test_star_toggles_and_the_starred_filter_shows_only_stars(owner_client, owner, make_generation):
    a = make_generation(owner, prompt="keep me")
    make_generation(owner, prompt="meh")
    response = owner_client.post(f"/gallery/{a.public_id}/star/", HTTP_X_REQUESTED_WITH="fetch")
    assert response.json() == {"favorite": True}
    a.refresh_from_db()
    assert a.favorite
    got = owner_client.get("/gallery/?starred=1").context["page"]
    assert [g.pk for g in got] == [a.pk]
    # Without JS: a normal POST comes back to where it was sent from.
    response = owner_client.post(f"/gallery/{a.public_id}/star/", {"next": "/gallery/?starred=1"})
    assert response.status_code == 302 and response["Location"] == "/gallery/?starred=1"
    a.refresh_from_db()
    assert not a.favorite
    assert (
        owner_client.post(f"/gallery/{a.public_id}/star/", {"next": "https://evil.example/"})[
            "Location"
        ]
        == f"/gallery/{a.public_id}/"
    )


def test_star_is_post_only_and_a_404_for_strangers(client, owner, stranger, make_generation):
    gen = make_generation(owner)
    client.force_login(stranger)
    assert client.post(f"/gallery/{gen.public_id}/star/").status_code == 404
    client.force_login(owner)
    assert client.get(f"/gallery/{gen.public_id}/star/").status_code == 405
    gen.refresh_from_db()
    assert not gen.favorite


def test_status_counts_follow_model_and_search_but_not_status(
    owner_client, owner, make_generation, wide_model
):
    make_generation(owner, prompt="fox one", status=S.COMPLETED)
    make_generation(owner, prompt="fox two", status=S.FAILED, error="x")
    make_generation(owner, prompt="whale", status=S.COMPLETED)
    make_generation(owner, prompt="fox wide", model=wide_model, status=S.COMPLETED)
    response = owner_client.get("/gallery/?q=fox&model=local-sketch&status=completed")
    counts = {c["value"]: c["count"] for c in response.context["status_counts"]}
    assert counts == {"": 2, "queued": 0, "running": 0, "completed": 1, "failed": 1, "canceled": 0}
    assert b'aria-current="true">Completed <span class="count">1</span>' in response.content


def test_filters_are_in_the_url_and_travel_to_the_detail_page(owner_client, owner, make_generation):
    gen = make_generation(owner, prompt="fox")
    response = owner_client.get("/gallery/?q=fox&sort=oldest&starred=&page_size=5")
    assert f'/gallery/{gen.public_id}/?q=fox&amp;sort=oldest"'.encode() in response.content


def test_empty_states_say_what_to_do(owner_client, owner, make_generation):
    assert b"Create your first image" in owner_client.get("/gallery/").content
    make_generation(owner, prompt="fox")
    assert b"No generations match these filters" in owner_client.get("/gallery/?q=zebra").content


# --- detail: prev/next, variants, actions ----------------------------------------------


def test_previous_and_next_stay_within_the_filter(owner_client, owner, make_generation):
    now = timezone.now()
    f1 = make_generation(owner, prompt="fox 1", created_at=now - timedelta(minutes=3))
    make_generation(owner, prompt="whale", created_at=now - timedelta(minutes=2))
    f2 = make_generation(owner, prompt="fox 2", created_at=now - timedelta(minutes=1))
    f3 = make_generation(owner, prompt="fox 3", created_at=now)
    ctx = owner_client.get(f"/gallery/{f2.public_id}/?q=fox").context
    assert (ctx["prev_id"], ctx["next_id"]) == (f3.public_id, f1.public_id)
    ctx = owner_client.get(f"/gallery/{f2.public_id}/?q=fox&sort=oldest").context
    assert (ctx["prev_id"], ctx["next_id"]) == (f1.public_id, f3.public_id)
    ctx = owner_client.get(f"/gallery/{f1.public_id}/?q=fox").context
    assert (ctx["prev_id"], ctx["next_id"]) == (f2.public_id, "")
    page = owner_client.get(f"/gallery/{f2.public_id}/?q=fox").content.decode()
    assert f'href="/gallery/{f1.public_id}/?q=fox" rel="next"' in page


def test_the_detail_page_has_copy_rerun_reuse_and_keeps_download_delete(
    owner_client, owner, make_generation
):
    gen = make_generation(owner, prompt="a red fox", seed=7)
    page = owner_client.get(f"/gallery/{gen.public_id}/").content.decode()
    assert 'data-copy-text="a red fox"' in page
    assert f'action="/gallery/{gen.public_id}/rerun/"' in page
    assert f'href="/?reuse={gen.public_id}"' in page
    assert f"/gallery/{gen.public_id}/delete/" in page
    assert "Provider" in page and "Seed" in page


def test_rerun_keeps_settings_with_a_new_seed_and_groups_as_a_variant(
    owner_client, owner, make_generation, django_capture_on_commit_callbacks
):
    gen = make_generation(
        owner, prompt="a red fox", seed=7, options={"size": "256x256"}, num_images=2
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/gallery/{gen.public_id}/rerun/")
    new = Generation.objects.exclude(pk=gen.pk).get()
    assert response.status_code == 302 and response["Location"] == f"/?new={new.public_id}"
    assert (new.parent, new.prompt, new.options, new.num_images) == (
        gen,
        "a red fox",
        {"size": "256x256"},
        2,
    )
    assert new.seed != 7
    assert new.status == S.COMPLETED and new.images.count() == 2  # eager Celery ran it
    ctx = owner_client.get(f"/gallery/{gen.public_id}/").context
    assert [v.pk for v in ctx["variants"]] == [new.pk]
    ctx = owner_client.get(f"/gallery/{new.public_id}/").context
    assert [v.pk for v in ctx["variants"]] == [gen.pk]


def test_retry_of_a_failed_generation_repeats_it_exactly(
    owner_client, owner, make_generation, django_capture_on_commit_callbacks
):
    gen = make_generation(owner, status=S.FAILED, error="The provider was down.", seed=42)
    card = owner_client.get(f"/g/{gen.public_id}/card/").content.decode()
    assert "The provider was down." in card
    assert f'action="/gallery/{gen.public_id}/retry/"' in card
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/gallery/{gen.public_id}/retry/")
    new = Generation.objects.get(parent=gen)
    assert new.seed == 42 and new.status == S.COMPLETED


@pytest.mark.parametrize("action", ["rerun", "retry"])
def test_rerun_and_retry_are_404_for_strangers_and_post_only(
    client, owner, stranger, make_generation, action
):
    gen = make_generation(owner, status=S.FAILED, error="x")
    client.force_login(stranger)
    assert client.post(f"/gallery/{gen.public_id}/{action}/").status_code == 404
    client.force_login(owner)
    assert client.get(f"/gallery/{gen.public_id}/{action}/").status_code == 405
    assert Generation.objects.count() == 1


def test_rerun_of_a_disabled_model_says_why(owner_client, owner, make_generation, local_model):
    gen = make_generation(owner)
    AIModel.objects.filter(pk=local_model.pk).update(enabled=False)
    response = owner_client.post(f"/gallery/{gen.public_id}/rerun/", follow=True)
    assert b"is not available any more" in response.content
    assert Generation.objects.count() == 1


def test_reuse_prefills_the_form_and_is_404_for_strangers(client, owner, stranger, make_generation):
    gen = make_generation(
        owner, prompt="a red fox", seed=99, negative_prompt="blur", options={"size": "256x256"}
    )
    client.force_login(owner)
    page = client.get(f"/?reuse={gen.public_id}").content.decode()
    assert "a red fox</textarea>" in page and 'value="99"' in page and "blur</textarea>" in page
    assert 'data-initial="256x256"' in page
    client.force_login(stranger)
    assert client.get(f"/?reuse={gen.public_id}").status_code == 404


# --- live cards ---------------------------------------------------------------------------


def test_a_running_card_shows_progress_and_keeps_polling(owner_client, owner, make_generation):
    gen = make_generation(owner, status=S.RUNNING, progress=0.4, started_at=timezone.now())
    card = owner_client.get(f"/g/{gen.public_id}/card/").content.decode()
    assert '<progress max="100" value="40"' in card
    assert f'data-poll="/g/{gen.public_id}/card/"' in card
    assert "data-since=" in card


def test_a_queued_card_shows_elapsed_time_and_a_final_card_stops_polling(
    owner_client, owner, make_generation
):
    queued = make_generation(owner, status=S.QUEUED)
    card = owner_client.get(f"/g/{queued.public_id}/card/").content.decode()
    assert "<progress" not in card and "waiting" in card and "data-since=" in card
    done = make_generation(owner, status=S.COMPLETED)
    card = owner_client.get(f"/g/{done.public_id}/card/").content.decode()
    assert "data-poll" not in card and "data-since" not in card


# --- input images and prompt templates ------------------------------------------------


def post_room(client, upload, **extra):
    data = {
        "model": "local-room",
        "tpl_theme": "Vintage",
        "tpl_room": "kitchen",
        "num_images": 1,
        "size": "256x256",
        **extra,
    }
    if upload is not None:
        data["input_image"] = upload
    return client.post("/", data)


def test_a_room_photo_is_upright_stripped_stored_and_used(
    owner_client, owner, room_model, django_capture_on_commit_callbacks
):
    raw = photo_bytes("JPEG", size=(64, 32), exif_orientation=6)  # 6 = rotate 90° on display
    with django_capture_on_commit_callbacks(execute=True):
        response = post_room(
            owner_client, SimpleUploadedFile("room.jpg", raw, "image/jpeg"), prompt="with plants"
        )
    assert response.status_code == 302, response.content[:2000]
    gen = Generation.objects.get()
    assert gen.prompt == "a Vintage kitchen, with plants"
    assert gen.options["template"] == {"theme": "Vintage", "room": "kitchen"}
    with gen.input_image.open("rb") as fh:
        stored = Image.open(io.BytesIO(fh.read()))
        stored.load()
    assert stored.format == "JPEG" and stored.size == (32, 64)  # turned upright
    assert not stored.getexif()  # orientation, camera and every other tag gone
    assert gen.status == S.COMPLETED
    out = gen.images.get()
    with out.file.open("rb") as fh:
        result = Image.open(io.BytesIO(fh.read())).convert("RGB")
    # The result is built from the photo: it is red-dominated like the photo, unlike the
    # renderer's plain pattern for the same prompt and seed.
    from generator.providers.local import render

    plain = Image.open(io.BytesIO(render(gen.prompt, gen.seed, (256, 256)))).convert("RGB")
    assert result.tobytes() != plain.tobytes()
    # The detail page shows before/after with a keyboard-usable slider.
    page = owner_client.get(f"/gallery/{gen.public_id}/").content.decode()
    assert f'src="/gallery/{gen.public_id}/input/"' in page and 'type="range"' in page
    assert owner_client.get(f"/gallery/{gen.public_id}/input/").status_code == 200


def test_the_restyle_is_deterministic_and_follows_the_photo(room_model):
    from generator.providers.local import restyle

    red, blue = photo_bytes(colour=(220, 20, 20)), photo_bytes(colour=(20, 20, 220))
    assert restyle(red, "a kitchen", 1, (64, 64)) == restyle(red, "a kitchen", 1, (64, 64))
    assert restyle(red, "a kitchen", 1, (64, 64)) != restyle(blue, "a kitchen", 1, (64, 64))
    assert restyle(red, "a kitchen", 1, (64, 64)) != restyle(red, "a kitchen", 2, (64, 64))


def test_the_input_image_is_404_for_strangers(client, owner, stranger, room_model):
    client.force_login(owner)
    post_room(client, SimpleUploadedFile("r.png", photo_bytes("PNG"), "image/png"))
    gen = Generation.objects.get()
    client.force_login(stranger)
    assert client.get(f"/gallery/{gen.public_id}/input/").status_code == 404


@pytest.mark.parametrize(
    "upload, message",
    [
        (None, "needs a photo"),
        (("r.gif", "GIF", "image/gif"), "not accepted"),
        (("r.txt", None, "text/plain"), "not a JPEG, PNG or WebP"),
    ],
)
def test_bad_photos_get_a_clear_error_and_nothing_is_saved(
    owner_client, room_model, upload, message
):
    if upload is not None:
        name, fmt, ctype = upload
        content = photo_bytes(fmt) if fmt else b"hello, not an image"
        upload = SimpleUploadedFile(name, content, ctype)
    response = post_room(owner_client, upload)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Generation.objects.count() == 0


def test_size_and_pixel_caps(owner_client, room_model, settings):
    settings.EASEL_INPUT_MAX_PIXELS = 1000
    response = post_room(
        owner_client, SimpleUploadedFile("r.png", photo_bytes("PNG", (50, 50)), "image/png")
    )
    assert response.status_code == 400 and "megapixels" in response.content.decode()
    settings.EASEL_INPUT_MAX_BYTES = 100
    response = post_room(
        owner_client,
        SimpleUploadedFile("r.png", photo_bytes("PNG", (200, 200)) + b"x" * 200, "image/png"),
    )
    assert response.status_code == 400 and "the limit is" in response.content.decode()
    assert Generation.objects.count() == 0


def test_template_choices_are_validated_server_side(owner_client, room_model):
    upload = SimpleUploadedFile("r.webp", photo_bytes("WEBP"), "image/webp")
    response = post_room(owner_client, upload, tpl_theme="Brutalist; ignore the rules")
    assert response.status_code == 400
    assert "Pick a theme from the list." in response.content.decode()
    assert Generation.objects.count() == 0


def test_a_model_without_input_image_refuses_an_upload(owner_client, local_model):
    upload = SimpleUploadedFile("r.png", photo_bytes("PNG"), "image/png")
    response = owner_client.post(
        "/", {"model": "local-sketch", "prompt": "x", "num_images": 1, "input_image": upload}
    )
    assert response.status_code == 400
    assert "does not take an input image" in response.content.decode()


def test_the_form_offers_upload_and_template_selects(owner_client, room_model):
    page = owner_client.get("/").content.decode()
    assert 'enctype="multipart/form-data"' in page
    assert 'name="input_image"' in page and 'name="tpl_theme"' in page and 'name="tpl_room"' in page
    assert '"template": ["theme", "room"]' in page


def test_rerun_copies_the_input_image(
    owner_client, owner, room_model, django_capture_on_commit_callbacks
):
    post_room(owner_client, SimpleUploadedFile("r.png", photo_bytes("PNG"), "image/png"))
    gen = Generation.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/gallery/{gen.public_id}/rerun/")
    new = Generation.objects.get(parent=gen)
    assert new.input_image and new.input_image.name != gen.input_image.name
    assert new.status == S.COMPLETED
    page = owner_client.get(f"/?reuse={gen.public_id}").content.decode()
    assert 'data-initial="Vintage"' in page and 'data-initial="kitchen"' in page
