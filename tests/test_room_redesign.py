"""Room redesign out of the box (issue 15): RoomFix's flow on a fresh install.

The seed migration adds the model on the offline renderer; the web form takes a phone photo;
the result's card shows the photo it started from and the detail page compares the two, each
in its own proportions. `addmodel` makes the same kind of model from the command line.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from importlib import import_module
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from generator import actions
from generator.models import AIModel, Generation
from tests.photo_flow import assert_is_stored_copy, room_jpeg, submit_room_photo
from tests.test_downloads import bomb_png

pytestmark = pytest.mark.django_db
S = Generation.Status
THEMES = ["Modern", "Vintage", "Minimalist", "Professional", "Tropical"]
ROOMS = ["Living Room", "Dining Room", "Bedroom", "Bathroom", "Office", "Gaming Room"]


@pytest.fixture
def room(db):
    """The seeded model (transactional tests flush migration rows: made again if so)."""
    found = AIModel.objects.filter(slug="room-redesign").first()
    if found is None:
        migration = import_module("generator.migrations.0006_seed_room_redesign")
        found = AIModel.objects.create(**migration.ROOM_REDESIGN)
    return found


def test_a_fresh_install_has_room_redesign_with_roomfix_choices(room, owner_client):
    assert room.provider == "local" and room.accepts_input_image
    assert room.prompt_template == "a {theme} {room}"
    assert room.template_choices == {"theme": THEMES, "room": ROOMS}
    page = owner_client.get("/").content.decode()
    assert "Room redesign" in page
    # The selects are filled by the page's script from the models' options.
    script = re.search(r'<script id="model-options" type="application/json">(.*?)</script>', page)
    options = json.loads(script.group(1))
    assert options["room-redesign"]["input_image"] is True
    assert json.dumps(THEMES) in json.dumps(options["room-redesign"])
    assert json.dumps(ROOMS) in json.dumps(options["room-redesign"])


def test_a_phone_photo_becomes_a_redesign_whose_card_shows_the_photo(
    room, owner_client, django_capture_on_commit_callbacks, settings
):
    settings.EASEL_LOCAL_PROVIDER_DELAY = 0
    with django_capture_on_commit_callbacks(execute=True):
        gen = submit_room_photo(owner_client, room.slug, room_jpeg(), tpl_theme="Tropical")
    gen.refresh_from_db()
    assert gen.status == S.COMPLETED, gen.error
    assert gen.prompt == "a Tropical Living Room"
    card = owner_client.get("/gallery/").content.decode()
    (from_url,) = re.findall(r'<img src="([^"]+)" alt="The photo it started from"', card)
    served = owner_client.get(from_url)
    assert served.status_code == 200
    assert_is_stored_copy(b"".join(served.streaming_content), gen)
    detail = owner_client.get(f"/gallery/{gen.public_id}/").content.decode()
    before = re.search(r'<img src="[^"]+" alt="Before: the uploaded photo"[^>]*>', detail).group(0)
    # The photo is not forced into the result's width/height (a 2:3 photo shown as 3:2).
    assert "width=" not in before and "height=" not in before
    assert 'type="range"' in detail


def test_a_card_without_a_photo_shows_none(owner, owner_client, make_generation):
    make_generation(owner)
    assert "started from" not in owner_client.get("/gallery/").content.decode()


@pytest.mark.parametrize(
    "content,name,message",
    [
        (b"x" * 2048, "room.jpg", "not a JPEG, PNG or WebP"),
        (bomb_png(), "room.png", "megapixels"),
    ],
)
def test_a_bad_photo_is_a_form_error_and_nothing_is_saved_or_sent(
    room, owner_client, content, name, message
):
    response = owner_client.post(
        "/",
        {
            "model": room.slug,
            "tpl_theme": "Modern",
            "tpl_room": "Office",
            "num_images": 1,
            "input_image": SimpleUploadedFile(name, content, "image/png"),
        },
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Generation.objects.exists()
    assert not default_storage.exists("inputs") or default_storage.listdir("inputs") == ([], [])


def test_a_photo_over_the_byte_cap_is_refused(room, owner_client, settings):
    settings.EASEL_INPUT_MAX_BYTES = 1000
    response = owner_client.post(
        "/",
        {
            "model": room.slug,
            "tpl_theme": "Modern",
            "tpl_room": "Office",
            "num_images": 1,
            "input_image": SimpleUploadedFile("r.jpg", room_jpeg() + b"\0" * 2000, "image/jpeg"),
        },
    )
    assert response.status_code == 400 and "the limit is" in response.content.decode()
    assert not Generation.objects.exists()


def test_addmodel_takes_the_template_and_its_choices(db):
    call_command(
        "addmodel", "my-room", "--provider", "local", "--remote-id", "my-room",
        "--option", "input_image=true", "--template", "a {theme} {room}",
        "--choice", "theme=Modern,Vintage", "--choice", 'room=["Living Room", "Office"]',
    )  # fmt: skip
    model = AIModel.objects.get(slug="my-room")
    assert model.prompt_template == "a {theme} {room}"
    assert model.template_choices == {
        "theme": ["Modern", "Vintage"],
        "room": ["Living Room", "Office"],
    }
    assert model.accepts_input_image


def test_a_double_clicked_upload_keeps_one_photo(
    room, owner_client, monkeypatch, django_capture_on_commit_callbacks
):
    """Two posts of one form (same idempotency key) racing: the second passes the look-up
    before the first commits, so its save meets the unique key. One generation, one photo."""
    real = actions._existing
    calls = []

    def racing(user, key):  # the first look-up runs before the other click has committed
        calls.append(key)
        return None if len(calls) == 2 else real(user, key)

    form = {
        "model": room.slug,
        "tpl_theme": "Modern",
        "tpl_room": "Office",
        "num_images": 1,
        "idempotency_key": "click-0123456789",
    }
    with django_capture_on_commit_callbacks(execute=False):
        first = owner_client.post("/", {**form, "input_image": upload()})
        monkeypatch.setattr(actions, "_existing", racing)
        calls.append("first")
        second = owner_client.post("/", {**form, "input_image": upload()})
    assert first.status_code == second.status_code == 302
    gen = Generation.objects.get()
    assert default_storage.listdir("inputs")[1] == [gen.input_image.name.split("/")[-1]]


def upload():
    return SimpleUploadedFile("room.jpg", room_jpeg(), "image/jpeg")


def test_the_readmes_controlnet_command_makes_a_working_replicate_room_model(db):
    """README's one command for Room redesign on Replicate's ControlNet runs as printed."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("**Room redesign on a real provider.**", 1)[1]
    command = block.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    args = shlex.split(command)
    assert args[:3] == [".venv/bin/python", "manage.py", "addmodel"]
    call_command(*args[2:])
    model = AIModel.objects.get(slug="room-controlnet")
    assert model.provider == "replicate" and model.accepts_input_image
    assert model.template_choices == {"theme": THEMES, "room": ROOMS}
    assert model.params["outputs"] == [1] and "a_prompt" in model.params["input"]


def test_maintenance_removes_an_orphaned_input_photo_and_keeps_a_used_one(
    room, owner_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        gen = submit_room_photo(owner_client, room.slug)
    orphan = default_storage.save("inputs/left-behind.jpg", ContentFile(room_jpeg()))
    out = io.StringIO()
    call_command("storage_maintenance", "--min-age", "0", "--skip-thumbnails", stdout=out)
    assert f"orphan: {orphan}" in out.getvalue()
    assert not default_storage.exists(orphan)
    assert default_storage.exists(gen.input_image.name)
