"""Contract tests against the reference client: the official `openai` package and Easel's adapter
send the same generation to the same loopback recorder, and the two requests must be equal field
for field (method, path, auth scheme, JSON body; for edits the multipart fields and file bytes).

The package is test equipment (requirements-dev.txt); without it these tests skip locally and
fail under CI=true, where a skip would hide that the contract was never checked.
"""

from __future__ import annotations

import base64
import importlib.util

import pytest
from django.core.files.base import ContentFile

from generator.providers import get_provider, photos
from tests.conftest import require
from tests.photo_flow import room_jpeg
from tests.simulators.base import Request, Response, Simulator, png_bytes
from tests.simulators.openai import parse_multipart

pytestmark = pytest.mark.django_db

KEY = "sk-contract-key"


class Recorder(Simulator):
    """Answers every POST with a valid ImagesResponse (openai `types/images_response.py`:
    `created` and `data[]` of `b64_json`) and keeps the request."""

    name = "recorder"

    def routes(self):
        return [("POST", r"/.*", self.answer)]

    def answer(self, request: Request) -> Response:
        image = base64.b64encode(png_bytes(8, 8)).decode()
        return Response(200, {"created": 1, "data": [{"b64_json": image}]})


@pytest.fixture
def recorder(settings):
    with Recorder() as server:
        settings.EASEL_PROVIDERS = {
            **settings.EASEL_PROVIDERS,
            "openai": {"api_key": KEY, "base_url": server.url},
        }
        yield server


@pytest.fixture
def sdk(recorder):
    require(
        importlib.util.find_spec("openai") is not None,
        "needs the official openai package (requirements-dev.txt: openai==3.51.0)",
    )
    import openai  # test equipment, present only where requirements-dev.txt is installed

    # The SDK's documented way to reach a compatible server; no retries, so one call = one POST.
    return openai.OpenAI(base_url=f"{recorder.url}/v1", api_key=KEY, max_retries=0)


def parts(request: Request) -> tuple[dict, list]:
    fields, files = {}, []
    for name, filename, content_type, data in parse_multipart(
        request.header("content-type"), request.body
    ):
        if filename is None:
            fields[name] = data.decode()
        else:
            files.append((name, filename, content_type, data))
    return fields, sorted(files)


def test_a_generation_is_the_request_the_sdk_sends(owner, make_generation, sdk, recorder):
    model = make_generation(owner).model
    model.provider, model.remote_id = "openai", "dall-e-2"
    model.params = {"quality": "standard", "response_format": "b64_json"}
    model.save()
    gen = make_generation(owner, model=model, num_images=2, options={"size": "512x512"})
    sdk.images.generate(
        model="dall-e-2",
        prompt=gen.prompt,
        n=2,
        size="512x512",
        user=owner.public_id,
        quality="standard",
        response_format="b64_json",
    )
    get_provider("openai").submit(gen)
    theirs, ours = recorder.received("POST")
    assert (
        (ours.method, ours.path)
        == (theirs.method, theirs.path)
        == (
            "POST",
            "/v1/images/generations",
        )
    )
    assert ours.header("authorization") == theirs.header("authorization") == f"Bearer {KEY}"
    assert ours.header("content-type") == theirs.header("content-type") == "application/json"
    assert ours.json == theirs.json
    assert theirs.json["user"] == owner.public_id and theirs.json["n"] == 2


def test_a_photo_edit_is_the_multipart_request_the_sdk_sends(owner, make_generation, sdk, recorder):
    model = make_generation(owner).model
    model.provider, model.remote_id = "openai", "gpt-image-1"
    model.options = {**model.options, "input_image": True}
    svg = {"model": "svg-author", "reasoning": {"effort": "low"}}  # nested: svg[reasoning][effort]
    model.params = {"quality": "high", "background": "opaque", "stream": False, "svg": svg}
    model.save()
    gen = make_generation(owner, model=model, options={"size": "1024x1536"})
    gen.input_image.save("room.jpg", ContentFile(room_jpeg()), save=True)
    photo = photos.input_photo(gen)
    sdk.images.edit(
        image=(photo.name, photo.data, photo.content_type),
        prompt=gen.prompt,
        model="gpt-image-1",
        n=1,
        size="1024x1536",
        user=owner.public_id,
        quality="high",
        background="opaque",
        stream=False,
        svg=svg,
    )
    get_provider("openai").submit(gen)
    theirs, ours = recorder.received("POST")
    assert (ours.method, ours.path) == (theirs.method, theirs.path) == ("POST", "/v1/images/edits")
    assert ours.header("authorization") == theirs.header("authorization") == f"Bearer {KEY}"
    for request in (ours, theirs):
        assert request.header("content-type").startswith("multipart/form-data; boundary=")
    their_fields, their_files = parts(theirs)
    our_fields, our_files = parts(ours)
    assert our_fields == their_fields
    assert their_fields["user"] == owner.public_id and their_fields["size"] == "1024x1536"
    assert their_fields["svg[reasoning][effort]"] == "low" and their_fields["stream"] == "false"
    assert our_files == their_files
    ((name, _filename, content_type, data),) = their_files
    assert (name, content_type, data) == ("image", "image/jpeg", photo.data)


def test_the_submit_waits_as_long_as_the_sdk(sdk):
    from openai._constants import DEFAULT_TIMEOUT  # the SDK's own wait for any reply

    provider = get_provider("openai")
    assert provider.sync_read_timeout == DEFAULT_TIMEOUT.read == 600
    assert sdk.timeout.read == DEFAULT_TIMEOUT.read  # what a default client really uses
