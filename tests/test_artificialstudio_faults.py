"""Artificial Studio: what is retried and what is never sent again, and when a webhook goes out.

The upload of the photo starts no paid work (credits are charged per `POST /api/run`, the docs'
per-model "Credits"), so a failed or lost upload is tried again; a `POST /api/run` that may have
reached the service is never sent again (PROTOCOLS.md Corrections, "all"). A webhook URL is sent
only for an https public PUBLIC_BASE_URL: "Webhook URLs must use HTTPS. Private or internal URLs
… are rejected" (artificialstudio.mintlify.app/api/webhook).
"""

from __future__ import annotations

import httpx
import pytest

from generator.models import Generation
from tests import s3server
from tests.photo_flow import assert_is_stored_copy, room_jpeg, room_model, submit_room_photo
from tests.simulators.artificialstudio import ArtificialStudioSimulator

pytestmark = pytest.mark.django_db
s3, s3_endpoint = s3server.s3, s3server.s3_endpoint
S = Generation.Status
EDIT = {"tool": "edit-image"}
NOT_AGAIN = "not sent again"


@pytest.fixture
def sim():
    with ArtificialStudioSimulator(send_webhooks=False) as server:
        yield server


@pytest.fixture
def configured(settings, sim):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "artificialstudio": {"api_key": sim.api_key, "base_url": sim.url},
    }
    settings.EASEL_PROVIDER_TIMEOUT = 1.0
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"
    return settings


def run_photo(client, capture, params=EDIT):
    model = room_model("artificialstudio", "seedream-4.5-edit", params=params)
    with capture(execute=True):  # the worker runs (and any retry is sent) after the commit
        gen = submit_room_photo(client, model.slug, room_jpeg())
    gen.refresh_from_db()
    return gen


def posts(sim, path):
    # Every request the simulator saw, the faulted ones included.
    return sim.received("POST", rf"^/api/{path}$")


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 502}, id="502"),
        pytest.param({"status": 500}, id="500"),
        pytest.param({"reset": True}, id="reply-lost"),
        pytest.param({"hang": 1.5}, id="timeout"),
        pytest.param({"malformed_json": True}, id="unreadable"),
    ],
)
def test_a_failed_or_lost_photo_upload_is_tried_again_and_the_job_is_sent_once(
    owner_client, configured, sim, django_capture_on_commit_callbacks, fault
):
    sim.faults.set(**fault, times=1, only=r"^/api/files$")
    gen = run_photo(owner_client, django_capture_on_commit_callbacks)
    assert gen.status == S.COMPLETED, gen.error
    assert len(posts(sim, "files")) == 2 and len(posts(sim, "run")) == 1
    assert sim.submissions == 1
    (job,) = sim.jobs.values()
    assert_is_stored_copy(job["_images"][0], gen)


def test_an_upload_the_service_refuses_fails_readably_and_no_job_is_sent(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    sim.faults.set(status=413, times=1, only=r"^/api/files$")
    gen = run_photo(owner_client, django_capture_on_commit_callbacks)
    assert gen.status == S.FAILED and "refused the request (413)" in gen.error
    assert len(posts(sim, "files")) == 1 and posts(sim, "run") == [] and sim.submissions == 0


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"malformed_json": True}, id="2xx-unreadable"),
        pytest.param({"reset": True}, id="reply-lost"),
        pytest.param({"hang": 1.5}, id="timeout"),
    ],
)
def test_a_photo_job_whose_reply_is_lost_or_unreadable_is_final_and_never_sent_again(
    owner_client, configured, sim, django_capture_on_commit_callbacks, fault
):
    sim.faults.set(**fault, times=1, only=r"^/api/run$")
    gen = run_photo(owner_client, django_capture_on_commit_callbacks)
    assert gen.status == S.FAILED and NOT_AGAIN in gen.error, gen.error
    # One upload, one job POST: neither the job nor (with it) the photo went a second time.
    assert len(posts(sim, "run")) == 1 and len(posts(sim, "files")) == 1 and gen.attempts == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_run_the_errors_page_says_to_retry_is_sent_again(
    owner_client, configured, sim, django_capture_on_commit_callbacks, status
):
    sim.faults.set(status=status, times=1, only=r"^/api/run$")
    gen = run_photo(owner_client, django_capture_on_commit_callbacks)
    assert gen.status == S.COMPLETED, gen.error
    assert len(posts(sim, "run")) == 2 and sim.submissions == 1


def test_a_504_to_the_run_is_an_unknown_outcome_and_never_sent_again(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    # The errors page lists 500/502/503 as "retry"; a gateway timeout may come after the job
    # started, so it is not re-sent.
    sim.faults.set(status=504, times=1, only=r"^/api/run$")
    gen = run_photo(owner_client, django_capture_on_commit_callbacks)
    assert gen.status == S.FAILED and "server error (504)" in gen.error and NOT_AGAIN in gen.error
    assert len(posts(sim, "run")) == 1


def test_on_s3_storage_the_photo_still_goes_through_the_files_api(
    s3, owner_client, configured, sim, django_capture_on_commit_callbacks
):
    gen = run_photo(owner_client, django_capture_on_commit_callbacks)
    assert gen.status == S.COMPLETED, gen.error
    assert gen.input_image.name in s3.keys()
    (upload,) = posts(sim, "files")
    assert_is_stored_copy(upload.body, gen)
    (run,) = posts(sim, "run")
    assert run.json["input"]["image_urls"][0].startswith(f"{sim.url}/uploads/")


@pytest.mark.parametrize(
    "base",
    ["http://127.0.0.1:9", "http://easel.example.org", "https://10.1.2.3", "https://localhost"],
)
def test_no_webhook_field_goes_out_unless_the_base_url_is_https_and_public(
    owner_client, configured, sim, django_capture_on_commit_callbacks, base
):
    configured.PUBLIC_BASE_URL = base
    assert sim.webhook_public_only  # the fixture keeps the service's own check
    gen = run_photo(owner_client, django_capture_on_commit_callbacks)
    assert gen.status == S.COMPLETED, gen.error
    (run,) = posts(sim, "run")
    assert "webhook" not in run.json


def test_an_https_public_base_url_goes_out_as_the_webhook_of_a_photo_job(
    owner_client, configured, sim, django_capture_on_commit_callbacks
):
    configured.PUBLIC_BASE_URL = "https://easel.example.org"
    gen = run_photo(owner_client, django_capture_on_commit_callbacks)
    assert gen.status == S.COMPLETED, gen.error
    (run,) = posts(sim, "run")
    assert run.json["webhook"] == "https://easel.example.org/webhooks/artificialstudio/"


@pytest.mark.parametrize(
    "hook, refused",
    [
        ("http://easel.example.org/hook", "must use HTTPS"),
        ("https://127.0.0.1/hook", "must be public"),
        ("https://192.168.1.20/hook", "must be public"),
        ("https://localhost/hook", "must be public"),
    ],
)
def test_the_simulator_refuses_a_non_https_or_private_webhook_by_default(hook, refused):
    # Test equipment checked against the reference (AS4): on by default, so an adapter that
    # sent such a URL would see the 400 the service gives.
    with ArtificialStudioSimulator(send_webhooks=False) as server:
        reply = httpx.post(
            f"{server.url}/api/run",
            headers={"Authorization": server.api_key},
            json={"tool": "create-image", "input": {"prompt": "x"}, "webhook": hook},
        )
        assert reply.status_code == 400
        assert reply.json()["errors"][0]["field"] == "webhook"
        assert refused in reply.json()["errors"][0]["message"] and server.submissions == 0
