"""Easel's OpenAI-compatible API driven by the official `openai` package over a live server
(issue 17): models.list, images.generate (url and b64_json) and images.edit with a photo, only
the base URL and the key changed. The URLs it returns serve the image to a key holder with no
session (on local disk: signed, expiring URLs), and the generations are in the owner's gallery,
marked as made through the API."""

from __future__ import annotations

import base64
import io
from importlib import import_module

import httpx
import pytest
from django.test import Client as DjangoClient
from PIL import Image

from accounts.models import ApiKey
from generator.image_urls import signed_local_url
from generator.models import AIModel, Generation
from tests.conftest import require
from tests.photo_flow import room_jpeg

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_server, owner, local_model, settings):
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is in requirements-dev.txt
        require(False, "the openai package is not installed (requirements-dev.txt)")
    settings.EASEL_API_SYNC_TIMEOUT = 20
    key = ApiKey.issue(owner, "sdk")[1]
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=key, max_retries=0)


def test_models_list_names_the_enabled_models(client, local_model):
    AIModel.objects.create(slug="off", name="Off", provider="local", remote_id="x", enabled=False)
    ids = [m.id for m in client.models.list()]
    assert "local-sketch" in ids and "off" not in ids


def test_generate_returns_a_url_a_key_holder_can_fetch_and_marks_the_gallery_card(
    client, live_server, owner
):
    result = client.images.generate(model="local-sketch", prompt="a fox", size="512x512")
    url = result.data[0].url
    assert url.startswith(live_server.url)
    served = httpx.get(url)  # no session, no key: the URL itself is the permission
    assert served.status_code == 200
    assert Image.open(io.BytesIO(served.content)).size == (512, 512)
    gen = Generation.objects.get()
    assert gen.user == owner and gen.via_api and gen.status == "completed"
    browser = DjangoClient()
    browser.force_login(owner)
    card = browser.get("/gallery/").content.decode()
    assert f'id="gen-{gen.public_id}"' in card and "via API" in card
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert httpx.get(tampered).status_code == 404


def test_b64_json_is_a_decodable_image(client):
    result = client.images.generate(
        model="local-sketch", prompt="a fox", size="256x256", response_format="b64_json"
    )
    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert image.size == (256, 256)


def test_edit_sends_a_photo_to_a_room_model(client):
    room = import_module("generator.migrations.0006_seed_room_redesign").ROOM_REDESIGN
    AIModel.objects.get_or_create(slug=room["slug"], defaults=room)
    result = client.images.edit(
        model="room-redesign",
        image=("room.jpg", room_jpeg(), "image/jpeg"),
        prompt="with plants",
        size="512x512",
        extra_body={"tpl_theme": "Tropical", "tpl_room": "Bedroom"},
    )
    assert httpx.get(result.data[0].url).status_code == 200
    gen = Generation.objects.get()
    assert gen.prompt == "a Tropical Bedroom, with plants" and gen.via_api
    with gen.input_image.open("rb") as handle:
        stored = Image.open(io.BytesIO(handle.read()))
    assert stored.size == (32, 64) and not stored.getexif()  # upright, no EXIF/GPS


def test_edit_without_a_photo_model_or_file_is_a_400_in_openais_shape(client):
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        client.images.edit(
            model="local-sketch", image=("r.jpg", room_jpeg(), "image/jpeg"), prompt="x"
        )
    assert "does not take an input image" in info.value.message
    assert not Generation.objects.exists()


def test_an_expired_signed_url_is_a_404(live_server, owner, local_model):
    assert httpx.get(live_server.url + signed_local_url("generations/x.png", -5)).status_code == 404
