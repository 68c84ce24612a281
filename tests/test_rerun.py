"""Re-run and Retry (issue 14): idempotent, checked against the model as it is today, and Retry
only for what failed or was canceled."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client

from generator.models import Generation, UsageEntry
from tests.conftest import require, uses_postgres

S = Generation.Status


def token_of(client, gen) -> str:
    page = client.get(f"/gallery/{gen.public_id}/").content.decode()
    return re.search(r'name="token" value="([^"]+)"', page).group(1)


@pytest.mark.django_db
def test_five_clicks_on_one_page_make_one_variant_and_a_new_page_another(
    owner_client, owner, make_generation, django_capture_on_commit_callbacks
):
    gen = make_generation(owner, seed=7)
    token = token_of(owner_client, gen)
    with django_capture_on_commit_callbacks(execute=False):
        for _ in range(5):
            response = owner_client.post(f"/gallery/{gen.public_id}/rerun/", {"token": token})
            assert response.status_code == 302
        assert Generation.objects.filter(parent=gen).count() == 1
        owner_client.post(
            f"/gallery/{gen.public_id}/rerun/", {"token": token_of(owner_client, gen)}
        )
    variants = Generation.objects.filter(parent=gen)
    assert variants.count() == 2
    assert UsageEntry.objects.filter(generation__in=variants, kind="charge").count() == 2


@pytest.mark.django_db
def test_retry_is_made_once_per_generation(
    owner_client, owner, make_generation, django_capture_on_commit_callbacks
):
    failed = make_generation(owner, status=S.FAILED, error="boom", seed=3)
    with django_capture_on_commit_callbacks(execute=False):
        first = owner_client.post(f"/gallery/{failed.public_id}/retry/")
        again = owner_client.post(f"/gallery/{failed.public_id}/retry/")
    retry = Generation.objects.get(parent=failed)
    assert retry.seed == 3 and retry.status == S.QUEUED
    assert first["Location"] == again["Location"] == f"/?new={retry.public_id}"


@pytest.mark.django_db(transaction=True)
def test_five_concurrent_retries_make_one_generation(owner, local_model):
    require(uses_postgres(), "needs PostgreSQL for concurrent requests")
    failed = Generation.objects.create(
        user=owner,
        model=local_model,
        provider="local",
        prompt="a fox",
        options={"size": "512x512"},
        status=S.FAILED,
        error="boom",
    )

    def click(_):
        client = Client()
        client.force_login(owner)
        try:
            return client.post(f"/gallery/{failed.public_id}/retry/").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(5) as pool:
        codes = list(pool.map(click, range(5)))
    assert codes == [302] * 5
    assert Generation.objects.filter(parent=failed).count() == 1
    assert UsageEntry.objects.filter(generation__parent=failed, kind="charge").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("status", [S.COMPLETED, S.QUEUED, S.RUNNING])
def test_retry_is_refused_unless_failed_or_canceled(owner_client, owner, make_generation, status):
    gen = make_generation(owner, status=status)
    response = owner_client.post(f"/gallery/{gen.public_id}/retry/", follow=True)
    assert "Only a failed or canceled generation can be retried" in response.content.decode()
    assert not Generation.objects.filter(parent=gen).exists()
    page = owner_client.get(f"/gallery/{gen.public_id}/").content.decode()
    assert f"/gallery/{gen.public_id}/retry/" not in page  # not offered either


@pytest.mark.django_db
def test_a_rerun_of_settings_the_model_no_longer_allows_is_refused(
    owner_client, owner, make_generation, local_model
):
    gen = make_generation(owner, options={"size": "1024x1024"}, num_images=4)
    local_model.options = {**local_model.options, "sizes": ["512x512"], "max_images": 2}
    local_model.save()
    token = token_of(owner_client, gen)
    response = owner_client.post(f"/gallery/{gen.public_id}/rerun/", {"token": token}, follow=True)
    text = response.content.decode()
    assert "Local Sketch has changed since this was made" in text
    assert "does not offer size 1024x1024" in text and "at most 2 images" in text
    assert not Generation.objects.filter(parent=gen).exists()
    assert not UsageEntry.objects.filter(generation__parent=gen).exists()
