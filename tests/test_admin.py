from __future__ import annotations

import pytest

from generator.models import Generation
from generator.tasks import run_generation

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def test_staff_pages_load(staff_client, owner, make_generation):
    gen = make_generation(owner, status=Generation.Status.QUEUED)
    run_generation(gen.pk)
    for url in (
        "/admin/",
        "/admin/accounts/user/",
        f"/admin/accounts/user/{owner.pk}/change/",
        "/admin/accounts/user/add/",
        "/admin/generator/aimodel/",
        "/admin/generator/aimodel/add/",
        "/admin/generator/generation/?status__exact=completed",
        "/admin/generator/generation/?q=fox",
        f"/admin/generator/generation/{gen.pk}/change/",
        "/admin/generator/outputimage/",
    ):
        assert staff_client.get(url).status_code == 200, url


def test_the_generation_admin_shows_thumbnails_inline(staff_client, owner, make_generation):
    gen = make_generation(owner, status=Generation.Status.QUEUED)
    run_generation(gen.pk)
    page = staff_client.get(f"/admin/generator/generation/{gen.pk}/change/").content.decode()
    assert f"/gallery/{gen.public_id}/images/0/thumb/" in page


def test_staff_can_disable_a_model(staff_client, local_model):
    staff_client.post(
        "/admin/generator/aimodel/",
        {"action": "disable", "_selected_action": [local_model.pk]},
    )
    local_model.refresh_from_db()
    assert not local_model.enabled


def test_a_normal_user_gets_the_admin_login(owner_client):
    response = owner_client.get("/admin/generator/generation/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
