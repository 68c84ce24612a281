"""The gallery: only your own, filtered, keyset-paginated; anyone else's is a 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from generator.models import AIModel, Generation
from generator.tasks import run_generation

pytestmark = pytest.mark.django_db
Q = Generation.Status


def test_the_gallery_shows_only_my_generations_newest_first(
    owner_client, owner, stranger, make_generation
):
    now = timezone.now()
    old = make_generation(owner, prompt="old one", created_at=now - timedelta(hours=1))
    new = make_generation(owner, prompt="new one", created_at=now)
    make_generation(stranger, prompt="not mine")
    page = owner_client.get("/gallery/")
    assert [g.pk for g in page.context["page"]] == [new.pk, old.pk]
    assert b"not mine" not in page.content


def test_filters_by_model_and_status_combine(owner_client, owner, make_generation, wide_model):
    a = make_generation(owner, status=Q.COMPLETED)
    make_generation(owner, status=Q.FAILED, error="boom")
    c = make_generation(owner, model=wide_model, status=Q.COMPLETED)
    assert {g.pk for g in owner_client.get("/gallery/?status=completed").context["page"]} == {
        a.pk,
        c.pk,
    }
    assert [g.pk for g in owner_client.get("/gallery/?model=local-wide").context["page"]] == [c.pk]
    got = owner_client.get("/gallery/?model=local-sketch&status=completed").context["page"]
    assert [g.pk for g in got] == [a.pk]


@pytest.mark.parametrize(
    "query",
    [
        "status=bogus",
        "model=nope",
        "page_size=0",
        "page_size=201",
        "page_size=x",
        "cursor=forged",
        "cursor=" + "A" * 300,
        "model=%00",
    ],
)
def test_a_bad_filter_is_a_clear_400(owner_client, query):
    response = owner_client.get(f"/gallery/?{query}")
    assert response.status_code == 400
    assert b"That filter does not work" in response.content


def test_keyset_pagination_walks_every_row_once(owner_client, owner, make_generation):
    now = timezone.now()
    # Equal timestamps on purpose: the id breaks the tie.
    rows = [make_generation(owner, created_at=now - timedelta(seconds=i // 2)) for i in range(7)]
    seen, url = [], "/gallery/?page_size=3"
    while url:
        response = owner_client.get(url)
        seen += [g.pk for g in response.context["page"]]
        cursor = response.context["next_cursor"]
        url = f"/gallery/?page_size=3&cursor={cursor}" if cursor else None
    expected = [g.pk for g in sorted(rows, key=lambda g: (g.created_at, g.pk), reverse=True)]
    assert seen == expected


def test_the_gallery_uses_keyset_not_offset(
    owner_client, owner, make_generation, django_assert_max_num_queries
):
    for _ in range(5):
        make_generation(owner)
    first = owner_client.get("/gallery/?page_size=2")
    cursor = first.context["next_cursor"]
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        owner_client.get(f"/gallery/?page_size=2&cursor={cursor}")
    sql = " ".join(q["sql"] for q in queries.captured_queries if "generator_generation" in q["sql"])
    assert "OFFSET" not in sql.upper()


def test_a_cursor_from_another_user_shows_only_my_rows(client, owner, stranger, make_generation):
    for _ in range(3):
        make_generation(stranger, prompt="theirs")
    make_generation(owner, prompt="mine")
    client.force_login(stranger)
    cursor = client.get("/gallery/?page_size=1").context["next_cursor"]
    client.force_login(owner)
    response = client.get(f"/gallery/?page_size=1&cursor={cursor}")
    assert response.status_code == 200
    assert all(g.user_id == owner.pk for g in response.context["page"])


def test_the_detail_page_shows_images_prompt_options_and_error(
    owner_client, owner, make_generation
):
    gen = make_generation(owner, status=Q.QUEUED, seed=5, prompt="a <b>bold</b> cat")
    run_generation(gen.pk)
    page = owner_client.get(f"/gallery/{gen.public_id}/").content.decode()
    assert "a &lt;b&gt;bold&lt;/b&gt; cat" in page
    assert "512x512" in page and ">5<" in page
    assert f"/gallery/{gen.public_id}/images/0/original/" in page
    failed = make_generation(owner, status=Q.FAILED, error="The provider said no.")
    assert (
        "The provider said no."
        in owner_client.get(f"/gallery/{failed.public_id}/").content.decode()
    )


def test_another_users_generation_is_a_404_everywhere(client, owner, stranger, make_generation):
    gen = make_generation(owner, status=Q.QUEUED)
    run_generation(gen.pk)
    client.force_login(stranger)
    for url in (
        f"/gallery/{gen.public_id}/",
        f"/g/{gen.public_id}/card/",
        f"/gallery/{gen.public_id}/images/0/original/",
        f"/gallery/{gen.public_id}/images/0/thumb/",
    ):
        assert client.get(url).status_code == 404, url


def test_the_owner_and_staff_get_the_image_bytes(client, owner, staff, make_generation):
    gen = make_generation(owner, status=Q.QUEUED)
    run_generation(gen.pk)
    for user in (owner, staff):
        client.force_login(user)
        response = client.get(f"/gallery/{gen.public_id}/images/0/thumb/")
        assert response.status_code == 200
        assert response["Content-Type"] == "image/webp"
        assert b"".join(response.streaming_content)[:4] == b"RIFF"


def test_gallery_queries_do_not_grow_with_the_page(
    owner_client, owner, make_generation, django_assert_max_num_queries
):
    for _ in range(30):
        gen = make_generation(owner, status=Q.QUEUED)
        run_generation(gen.pk)
    owner_client.get("/gallery/?page_size=2")
    with django_assert_max_num_queries(6):
        owner_client.get("/gallery/?page_size=30")


def test_an_empty_gallery_says_what_to_do(owner_client):
    assert b"Create your first image" in owner_client.get("/gallery/").content


def test_a_disabled_models_generations_stay_visible(
    owner_client, owner, make_generation, local_model
):
    gen = make_generation(owner)
    AIModel.objects.filter(pk=local_model.pk).update(enabled=False)
    assert gen in owner_client.get("/gallery/?model=local-sketch").context["page"]
