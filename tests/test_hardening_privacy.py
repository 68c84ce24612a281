"""Issue #14 part B: deleting a generation or an account removes the uploaded photo."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

pytestmark = pytest.mark.django_db


def with_photo(gen, name="inputs/photo.png"):
    gen.input_image.save(name.split("/")[-1], ContentFile(b"\x89PNG fake"), save=True)
    return gen.input_image.name


def test_deleting_a_generation_removes_its_uploaded_photo(
    owner, make_generation, django_capture_on_commit_callbacks
):
    gen = make_generation(owner)
    name = with_photo(gen)
    assert default_storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        gen.delete()
    assert not default_storage.exists(name)


def test_deleting_an_account_removes_the_photos_of_its_generations(
    owner, make_generation, django_capture_on_commit_callbacks
):
    name = with_photo(make_generation(owner))
    with django_capture_on_commit_callbacks(execute=True):
        owner.delete()
    assert not default_storage.exists(name)


def test_a_photo_shared_with_a_rerun_stays_until_the_last_one_goes(
    owner, make_generation, django_capture_on_commit_callbacks
):
    first = make_generation(owner)
    name = with_photo(first)
    second = make_generation(owner)
    second.input_image.name = name
    second.save()
    with django_capture_on_commit_callbacks(execute=True):
        first.delete()
    assert default_storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        second.delete()
    assert not default_storage.exists(name)
