"""The worker's side: claim, submit to the provider, store images, final status."""

from __future__ import annotations

import io
import time

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from generator.models import Generation
from generator.providers import get_provider, provider_names
from generator.providers.local import render
from generator.tasks import check_generation, reap_generations, run_generation

pytestmark = pytest.mark.django_db

Q = Generation.Status


def test_the_local_provider_is_deterministic_from_prompt_and_seed():
    a = render("a blue whale", 7, (128, 96))
    assert a == render("a blue whale", 7, (128, 96))
    assert a != render("a blue whale", 8, (128, 96))
    assert a != render("a grey whale", 7, (128, 96))
    with Image.open(io.BytesIO(a)) as img:
        assert img.size == (128, 96) and img.format == "PNG"


def test_the_registry_knows_the_local_provider():
    assert "local" in provider_names()
    assert get_provider("local").offline


def test_a_generation_runs_to_completed_with_its_images_in_storage(owner, make_generation):
    gen = make_generation(
        owner, status=Q.QUEUED, num_images=2, seed=42, options={"size": "256x256"}
    )
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Q.COMPLETED, gen.error
    assert gen.started_at and gen.finished_at and gen.attempts == 1
    images = list(gen.images.all())
    assert [i.index for i in images] == [0, 1]
    for image in images:
        assert (image.width, image.height) == (256, 256)
        assert image.content_type == "image/png"
        with default_storage.open(image.file.name) as f:
            assert Image.open(f).size == (256, 256)
        with default_storage.open(image.thumbnail.name) as f:
            assert Image.open(f).format == "WEBP"
        assert image.file.name.startswith(f"generations/{owner.public_id}/{gen.public_id}/")


def test_a_delayed_local_job_reports_progress_and_then_completes(
    owner, make_generation, local_model, settings
):
    celery = pytest.importorskip("config.celery").app
    celery.conf.task_always_eager = False  # run the steps by hand to see them
    local_model.params = {"delay": 0.3}
    local_model.save()
    gen = make_generation(owner, status=Q.QUEUED, seed=1)
    from unittest import mock

    with mock.patch("generator.tasks.check_generation.apply_async") as scheduled:
        run_generation(gen.pk)
        gen.refresh_from_db()
        assert gen.status == Q.RUNNING
        assert gen.provider_job_id == f"local-{gen.public_id}"
        assert scheduled.call_args.kwargs["countdown"] <= 0.5  # the worker did not sleep
        check_generation(gen.pk, 1)
        gen.refresh_from_db()
        assert gen.status == Q.RUNNING and 0 < gen.progress < 1
        time.sleep(0.35)
        check_generation(gen.pk, 2)
    gen.refresh_from_db()
    assert gen.status == Q.COMPLETED and gen.progress == 1.0


def test_a_second_delivery_of_the_task_does_nothing(owner, make_generation):
    gen = make_generation(owner, status=Q.QUEUED, seed=1)
    run_generation(gen.pk)
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.attempts == 1 and gen.images.count() == 1


def test_an_unknown_provider_fails_with_a_readable_reason(owner, make_generation, local_model):
    local_model.provider = "gone"
    local_model.save()
    gen = make_generation(owner, status=Q.QUEUED)
    gen.provider = "gone"
    gen.save()
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Q.FAILED
    assert "not available" in gen.error


def test_a_bad_size_fails_with_a_readable_reason(owner, make_generation):
    gen = make_generation(owner, status=Q.QUEUED, options={"size": "huge"})
    run_generation(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Q.FAILED and "WIDTHxHEIGHT" in gen.error


def test_the_deadline_fails_a_job_that_never_finishes(owner, make_generation, local_model):
    local_model.params = {"delay": 3600}
    local_model.timeout_seconds = 0
    local_model.save()
    from config.celery import app

    app.conf.task_always_eager = False
    gen = make_generation(owner, status=Q.QUEUED)
    from unittest import mock

    with mock.patch("generator.tasks.check_generation.apply_async"):
        run_generation(gen.pk)
    check_generation(gen.pk, 1)
    gen.refresh_from_db()
    assert gen.status == Q.FAILED and gen.error.startswith("Timed out")


def test_final_states_are_never_left(owner, make_generation):
    gen = make_generation(owner, status=Q.COMPLETED)
    assert not gen.fail("late failure")
    assert not gen.cancel()
    gen.refresh_from_db()
    assert gen.status == Q.COMPLETED


class TestReaper:
    def test_it_redispatches_a_queued_row_whose_dispatch_was_lost(
        self, owner, make_generation, django_capture_on_commit_callbacks
    ):
        from datetime import timedelta

        from django.utils import timezone

        gen = make_generation(
            owner, status=Q.QUEUED, created_at=timezone.now() - timedelta(minutes=5)
        )
        with django_capture_on_commit_callbacks(execute=True):  # sent once the reaper commits
            counts = reap_generations()
        assert counts["redispatched"] == 1
        gen.refresh_from_db()
        assert gen.status == Q.COMPLETED  # eager: the re-dispatched task ran

    def test_it_fails_a_sent_request_whose_worker_died_instead_of_sending_it_again(
        self, owner, make_generation
    ):
        from datetime import timedelta

        from django.utils import timezone

        past = timezone.now() - timedelta(minutes=5)
        gen = make_generation(
            owner, status=Q.RUNNING, started_at=past, submitted_at=past, lease_until=past
        )
        assert reap_generations()["failed"] == 1
        gen.refresh_from_db()
        assert gen.status == Q.FAILED and "double charge" in gen.error

    def test_it_restarts_a_row_that_was_never_sent(
        self, owner, make_generation, django_capture_on_commit_callbacks
    ):
        from datetime import timedelta

        from django.utils import timezone

        past = timezone.now() - timedelta(minutes=5)
        gen = make_generation(owner, status=Q.RUNNING, started_at=past, lease_until=past)
        with django_capture_on_commit_callbacks(execute=True):
            assert reap_generations()["requeued"] == 1
        gen.refresh_from_db()
        assert gen.status == Q.COMPLETED


def _running(make_generation, owner, **kw) -> Generation:
    gen = make_generation(owner, status=Q.QUEUED, options={"size": "64x64"}, **kw)
    return Generation.claim(gen.pk, 60)


def _outputs(n: int = 2):
    from generator.providers.base import ImageOutput

    return [ImageOutput(data=render("a fox", i, (64, 64))) for i in range(n)]


def test_completion_stores_every_image_row_with_the_status_in_one_step(owner, make_generation):
    from generator.outputs import store_and_complete

    gen = _running(make_generation, owner)
    assert store_and_complete(gen, _outputs(2), get_provider("local"))
    assert gen.status == Q.COMPLETED  # the object too, not only the row
    gen.refresh_from_db()
    assert (gen.status, gen.progress, gen.lease_until) == (Q.COMPLETED, 1.0, None)
    rows = list(gen.images.order_by("index"))
    assert [(r.index, r.width, r.height, r.content_type) for r in rows] == [
        (0, 64, 64, "image/png"),
        (1, 64, 64, "image/png"),
    ]
    assert all(r.thumbnail_bytes and r.created_at and len(r.sha256) == 64 for r in rows)
    assert all(default_storage.exists(r.file.name) for r in rows)


def test_a_generation_canceled_while_the_provider_worked_keeps_nothing(owner, make_generation):
    from generator.outputs import store_and_complete

    gen = _running(make_generation, owner)
    Generation.objects.get(pk=gen.pk).cancel("Canceled by its owner.")
    written = []
    original = default_storage.save

    def save(name, content, **kw):
        written.append(original(name, content, **kw))
        return written[-1]

    default_storage.save = save
    try:
        assert not store_and_complete(gen, _outputs(2), get_provider("local"))
    finally:
        default_storage.save = original
    gen.refresh_from_db()
    assert gen.status == Q.CANCELED and not gen.images.exists()
    assert len(written) == 4 and not any(default_storage.exists(n) for n in written)


def test_images_stored_meanwhile_by_another_path_are_kept_and_it_completes(owner, make_generation):
    from generator.outputs import store_and_complete, store_outputs

    gen = _running(make_generation, owner)
    provider = get_provider("local")
    store_outputs(gen, _outputs(1), provider)  # e.g. an older worker stored image 0
    first = gen.images.get()
    assert store_and_complete(gen, _outputs(2), provider)
    gen.refresh_from_db()
    assert gen.status == Q.COMPLETED
    assert [i.index for i in gen.images.order_by("index")] == [0, 1]
    assert gen.images.get(index=0).file.name == first.file.name
