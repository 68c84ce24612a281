"""Issue #14 part B: staff mistakes do not take the site down, and staff pages check permissions."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from generator.admin import AIModelForm
from generator.models import AIModel
from generator.models.validation import model_json_errors

pytestmark = pytest.mark.django_db


def form_data(model: AIModel, **changes) -> dict:
    data = {
        "slug": model.slug,
        "name": model.name,
        "description": model.description,
        "provider": model.provider,
        "remote_id": model.remote_id,
        "enabled": "on",
        "position": model.position,
        "options": '{"max_images": 2}',
        "params": "{}",
        "tag_with": model.tag_with,
        "timeout_seconds": model.timeout_seconds,
        "prompt_template": "",
        "template_choices": "{}",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "options",
    ['{"max_images": "lots"}', '{"sizes": "512x512"}', '{"seed": "yes"}', "[1, 2]"],
)
def test_a_bad_option_is_a_form_error_in_the_admin(local_model, options):
    form = AIModelForm(data=form_data(local_model, options=options), instance=local_model)
    assert not form.is_valid()
    assert "options" in form.errors


def test_bad_template_choices_are_a_form_error(local_model):
    data = form_data(local_model, template_choices='{"theme": "Modern"}')
    form = AIModelForm(data=data, instance=local_model)
    assert not form.is_valid()
    assert "template_choices" in form.errors


def test_a_good_model_still_saves_from_the_admin(local_model):
    form = AIModelForm(data=form_data(local_model), instance=local_model)
    assert form.is_valid(), form.errors
    assert form.save().options == {"max_images": 2}


def test_addmodel_refuses_a_bad_option_and_saves_nothing(db):
    with pytest.raises(CommandError, match="max_images"):
        call_command(
            "addmodel",
            "typo",
            "--provider",
            "local",
            "--remote-id",
            "x",
            "--option",
            "max_images=lots",
        )
    assert not AIModel.objects.filter(slug="typo").exists()


def test_the_schema_accepts_every_seeded_model(local_model, wide_model):
    assert model_json_errors(local_model) == {}
    assert model_json_errors(wide_model) == {}


@pytest.fixture
def bare_staff_client(client, django_user_model):
    user = django_user_model.objects.create_user(
        email="bare@example.com", password="pw-Secret-123", is_staff=True
    )
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "path",
    ["/admin/generator/generation/failures/", "/admin/generator/generation/dashboard/"],
)
def test_staff_without_permissions_cannot_open_the_console_pages(bare_staff_client, path):
    assert bare_staff_client.get(path).status_code == 403


@pytest.mark.parametrize(
    "path",
    ["/admin/generator/generation/failures/", "/admin/generator/generation/dashboard/"],
)
def test_a_superuser_still_opens_the_console_pages(client, staff, path):
    client.force_login(staff)
    assert client.get(path).status_code == 200


@pytest.mark.django_db
def test_full_clean_refuses_json_that_breaks_the_schema_wherever_it_is_called(local_model):
    """Not only the admin's form and addmodel: any full_clean() (a shell, a data migration)."""
    local_model.options = {**local_model.options, "max_images": "lots"}
    with pytest.raises(ValidationError) as info:
        local_model.full_clean()
    assert info.value.message_dict["options"] == [
        '"max_images" must be a whole number from 1 to 100.'
    ]
