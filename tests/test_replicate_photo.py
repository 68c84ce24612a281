"""RoomFix on Replicate (issue 15): the phone photo reaches the model's image input as Easel's
stored copy (upright, no EXIF/GPS), whichever way it travels: a presigned URL on S3, a data URI
for a small photo on local disk, or an upload through Replicate's files API. The simulator
reads the input the way Replicate does (fetches the URL, decodes the data URI, resolves the
uploaded file) and records the bytes it got.
"""

from __future__ import annotations

import io
import random

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from generator.models import Generation
from generator.providers import get_provider
from generator.providers.replicate import DATA_URI_MAX_BYTES
from tests import s3server
from tests import test_provider_replicate as contract
from tests.photo_flow import assert_is_stored_copy, room_model, submit_room_photo

VERSION = contract.VERSION
sim, configured = contract.sim, contract.configured  # the contract tests' fixtures

pytestmark = pytest.mark.django_db
s3, s3_endpoint = s3server.s3, s3server.s3_endpoint
S = Generation.Status
CONTROLNET = f"jagilley/controlnet-hough:{VERSION}"


def run_photo(client, capture, model, raw=None) -> Generation:
    with capture(execute=True):
        gen = submit_room_photo(client, model.slug, raw)
    gen.refresh_from_db()
    return gen


def the_create(sim):
    (create,) = sim.received("POST", r"predictions$")
    return create


def stored_result(gen) -> bytes:
    (image,) = gen.images.all()
    with default_storage.open(image.file.name) as handle:
        return handle.read()


def test_a_small_photo_on_local_disk_goes_as_a_data_uri_of_the_stored_copy(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    model = room_model("replicate", VERSION)
    gen = run_photo(owner_client, django_capture_on_commit_callbacks, model)
    assert gen.status == S.COMPLETED, gen.error
    sent = the_create(sim).json["input"]
    assert sent["prompt"] == "a Modern Living Room"
    assert sent["image"].startswith("data:image/jpeg;base64,")
    assert not sim.received("POST", r"^/v1/files$")  # small: no upload needed
    assert_is_stored_copy(sim.inputs[gen.provider_job_id]["image"], gen)
    assert gen.images.count() == 1 and stored_result(gen)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_controlnet_model_gets_the_photo_in_its_own_input_and_keeps_only_the_result(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    # RoomFix's ControlNet model: `image` + prompt, a_prompt, n_prompt; it returns
    # [control map, result] and only the result is the redesign (params.outputs).
    sim.file_inputs, sim.control_map = ("input_image",), True
    params = {
        "image_input": "input_image",
        "input": {"a_prompt": "best quality", "n_prompt": "lowres"},
        "outputs": [1],
    }
    model = room_model("replicate", CONTROLNET, params=params)
    assert get_provider("replicate").model_errors(model) == []
    gen = run_photo(owner_client, django_capture_on_commit_callbacks, model)
    assert gen.status == S.COMPLETED, gen.error
    sent = the_create(sim).json
    assert sent["version"] == VERSION and "image" not in sent["input"]
    assert sent["input"]["a_prompt"] == "best quality" and sent["input"]["n_prompt"] == "lowres"
    assert_is_stored_copy(sim.inputs[gen.provider_job_id]["input_image"], gen)
    result_url = sim.predictions[gen.provider_job_id]["output"][1]
    assert stored_result(gen) == sim.files[result_url.rsplit("/", 1)[1].removesuffix(".png")][0]


def test_with_photo_via_files_the_photo_is_uploaded_and_the_prediction_gets_its_url(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    model = room_model("replicate", VERSION, params={"photo_via": "files"})
    gen = run_photo(owner_client, django_capture_on_commit_callbacks, model)
    assert gen.status == S.COMPLETED, gen.error
    (upload,) = sim.received("POST", r"^/v1/files$")
    assert upload.header("authorization") == f"Bearer {sim.token}"
    assert upload.header("content-type").startswith("multipart/form-data")
    ((fid, file),) = sim.uploads.items()
    assert file["content_type"] == "image/jpeg"
    assert the_create(sim).json["input"]["image"] == f"{sim.url}/v1/files/{fid}"
    assert_is_stored_copy(file["_data"], gen)
    assert_is_stored_copy(sim.inputs[gen.provider_job_id]["image"], gen)


def noisy_jpeg(size=(900, 700)) -> bytes:
    rng = random.Random(15)
    image = Image.frombytes(
        "RGB", size, bytes(rng.getrandbits(8) for _ in range(3 * size[0] * size[1]))
    )
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


def test_a_photo_over_the_data_uri_limit_is_uploaded_through_the_files_api(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    model = room_model("replicate", VERSION)
    gen = run_photo(owner_client, django_capture_on_commit_callbacks, model, noisy_jpeg())
    assert gen.status == S.COMPLETED, gen.error
    assert gen.input_image.size > DATA_URI_MAX_BYTES  # the stored copy, not the upload
    assert len(sim.received("POST", r"^/v1/files$")) == 1
    assert the_create(sim).json["input"]["image"].startswith(f"{sim.url}/v1/files/")
    assert sim.inputs[gen.provider_job_id]["image"] == gen.input_image.open("rb").read()


def test_on_s3_the_prediction_gets_a_presigned_url_of_the_stored_copy(
    s3, owner_client, configured, sim, django_capture_on_commit_callbacks
):
    model = room_model("replicate", VERSION)
    gen = run_photo(owner_client, django_capture_on_commit_callbacks, model)
    assert gen.status == S.COMPLETED, gen.error
    url = the_create(sim).json["input"]["image"]
    assert url.startswith(s3.endpoint) and "X-Amz-Signature=" in url
    assert not sim.received("POST", r"^/v1/files$")
    assert_is_stored_copy(sim.inputs[gen.provider_job_id]["image"], gen)
    (image,) = gen.images.all()
    assert image.file.name in s3.keys()  # the result is in Easel's storage, not Replicate's


def test_a_failed_upload_starts_no_prediction_and_is_retried(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    sim.faults.set(status=500, times=1, only=r"^/v1/files$")
    model = room_model("replicate", VERSION, params={"photo_via": "files"})
    gen = run_photo(owner_client, django_capture_on_commit_callbacks, model)
    assert gen.status == S.COMPLETED, gen.error
    assert len(sim.received("POST", r"^/v1/files$")) == 2  # costs nothing: tried again
    assert len(sim.received("POST", r"predictions$")) == 1


def test_replicate_takes_photos_and_the_admin_checks_the_photo_params():
    provider = get_provider("replicate")
    model = room_model("replicate", VERSION)
    assert provider.photo_problem(model) == "" and provider.model_errors(model) == []
    model.params = {"image_input": "in put", "photo_via": "ftp"}
    errors = provider.model_errors(model)
    assert len(errors) == 2
    assert "params.image_input" in errors[0] and "params.photo_via" in errors[1]
