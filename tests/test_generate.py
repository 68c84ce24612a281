"""The prompt page: validation, saving, dispatch after commit, one generation per click."""

from __future__ import annotations

from unittest import mock

import pytest

from generator.models import AIModel, Generation

pytestmark = pytest.mark.django_db


def post(client, **overrides):
    data = {
        "model": "local-sketch",
        "prompt": "a lighthouse at dusk",
        "size": "512x512",
        "num_images": "1",
        "seed": "",
        "negative_prompt": "",
        "idempotency_key": "",
    }
    data.update(overrides)
    return client.post("/", data)


def test_the_home_page_offers_enabled_models_with_the_offline_label(owner_client, local_model):
    AIModel.objects.create(slug="off", name="Switched off", provider="local", enabled=False)
    page = owner_client.get("/").content.decode()
    assert 'value="local-sketch"' in page
    assert "Local renderer (offline)" in page
    assert 'value="off"' not in page


def test_a_valid_prompt_is_saved_queued_and_dispatched_only_after_commit(
    owner_client, owner, django_capture_on_commit_callbacks
):
    with mock.patch("generator.tasks.run_generation.apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = post(owner_client)
        assert response.status_code == 302
        gen = Generation.objects.get()
        assert gen.status == Generation.Status.QUEUED
        assert gen.user == owner and gen.tag_sent == owner.public_id
        assert gen.seed is not None  # a random seed is chosen and recorded
        apply_async.assert_not_called()  # nothing leaves before the transaction commits
        assert len(callbacks) == 1
        callbacks[0]()
        apply_async.assert_called_once()
        assert apply_async.call_args.args[0] == (gen.pk,)


def test_the_request_makes_no_provider_call(owner_client, django_capture_on_commit_callbacks):
    with mock.patch("generator.providers.local.LocalProvider.submit") as submit:
        with django_capture_on_commit_callbacks(execute=False):
            post(owner_client)
    submit.assert_not_called()


def test_a_double_click_creates_one_generation(owner_client):
    with mock.patch("generator.tasks.run_generation.apply_async"):
        first = post(owner_client, idempotency_key="key-abcdef-123")
        second = post(owner_client, idempotency_key="key-abcdef-123")
    assert Generation.objects.count() == 1
    assert first["Location"] == second["Location"]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"prompt": ""}, "prompt", "Write a prompt first."),
        ({"prompt": "   \n\t "}, "prompt", "Write a prompt first."),
        ({"prompt": "x" * 1001}, "prompt", "takes at most 1000"),
        ({"model": "no-such-model"}, "model", "not available"),
        ({"model": "disabled-model"}, "model", "not available"),
        ({"size": "9999x9999"}, "size", "does not offer size"),
        ({"num_images": "5"}, "num_images", "Select a valid choice"),
        ({"num_images": "0"}, "num_images", "Select a valid choice"),
        ({"seed": "-1"}, "seed", "greater than or equal to 0"),
        ({"seed": "abc"}, "seed", "whole number"),
        ({"idempotency_key": "<script>"}, "idempotency_key", "tampered"),
        (
            {"model": "local-wide", "aspect_ratio": "7:3", "size": ""},
            "aspect_ratio",
            "does not offer",
        ),
        ({"model": "local-wide", "size": "512x512"}, "size", "does not take a size"),
        (
            {"model": "local-wide", "negative_prompt": "blur", "size": ""},
            "negative_prompt",
            "does not take",
        ),
    ],
)
def test_bad_input_shows_the_error_and_saves_and_sends_nothing(
    owner_client, overrides, field, message
):
    AIModel.objects.create(slug="disabled-model", name="Off", provider="local", enabled=False)
    with mock.patch("generator.tasks.run_generation.apply_async") as apply_async:
        response = post(owner_client, **overrides)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert Generation.objects.count() == 0
    apply_async.assert_not_called()


def test_a_model_with_fewer_images_refuses_more(owner_client, local_model):
    local_model.options = {**local_model.options, "max_images": 2}
    local_model.save()
    response = post(owner_client, num_images="3")
    assert response.status_code == 400
    assert "at most 2 images" in str(response.context["form"].errors)


def test_the_submission_survives_a_broker_that_is_down(
    owner_client, django_capture_on_commit_callbacks
):
    with mock.patch(
        "generator.tasks.run_generation.apply_async", side_effect=ConnectionError("broker down")
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = post(owner_client)
    assert response.status_code == 302
    gen = Generation.objects.get()
    assert gen.status == Generation.Status.QUEUED
    assert gen.dispatched_at is None  # the reaper will send it
