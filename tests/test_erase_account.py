"""Issue #18 — erase my account: every stored object of the user leaves the bucket (moto S3
server over loopback, tests/s3server.py), the ledger stays with user NULL, staff totals hold."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from storages.backends.s3 import S3Storage

from generator.admin_views import dashboard_data
from generator.erase import EraseError, erase_user
from generator.limits import ledger_totals
from generator.models import Generation, OutputImage, UsageEntry
from tests import s3server
from tests.test_storage_s3 import completed_on_s3

pytestmark = pytest.mark.django_db
s3, s3_endpoint = s3server.s3, s3server.s3_endpoint


def with_photo_and_charge(user, make_generation) -> Generation:
    gen = completed_on_s3(user, make_generation)
    gen.input_image.save("photo.png", ContentFile(b"\x89PNG input"), save=True)
    UsageEntry.objects.charge(gen)
    return gen


def user_keys(s3, gen) -> list[str]:
    image = gen.images.get()
    return sorted([image.file.name, image.thumbnail.name, gen.input_image.name])


def test_deleting_my_account_empties_the_bucket_of_me_and_keeps_the_ledger_anonymised(
    s3, owner, stranger, owner_client, make_generation
):
    mine = with_photo_and_charge(owner, make_generation)
    theirs = with_photo_and_charge(stranger, make_generation)
    s3.put(f"exports/{owner.public_id}/all.zip", b"PK")  # another feature's object of mine
    assert set(user_keys(s3, mine)) <= set(s3.keys())
    before = ledger_totals()
    assert before["charged"] == 2 and before["anonymised"] == 0

    wrong = owner_client.post("/account/delete/", {"confirm": "not my password"})
    assert wrong.status_code == 400 and b"nothing was deleted" in wrong.content
    assert type(owner).objects.filter(pk=owner.pk).exists()

    page = owner_client.get("/account/")
    assert b"/account/delete/" in page.content
    done = owner_client.post("/account/delete/", {"confirm": "pw-Secret-123"})
    assert done.status_code == 302

    assert not type(owner).objects.filter(pk=owner.pk).exists()
    keys = s3.keys()
    assert not [k for k in keys if str(owner.public_id) in k or k == mine.input_image.name]
    assert set(user_keys(s3, theirs)) <= set(keys)  # the stranger's objects stay
    assert not Generation.objects.filter(pk=mine.pk).exists()
    assert not OutputImage.objects.filter(generation_id=mine.pk).exists()

    row = UsageEntry.objects.get(model=mine.model, user__isnull=True)
    assert row.anonymised_at is not None and row.images == mine.num_images
    assert ledger_totals() == {**before, "anonymised": mine.num_images}
    assert dashboard_data()["ledger"]["charged"] == before["charged"]
    assert owner_client.get("/account/").status_code == 302  # signed out


def test_a_storage_failure_leaves_the_account_whole_and_a_retry_finishes(
    s3, owner, make_generation, monkeypatch
):
    gen = with_photo_and_charge(owner, make_generation)
    real_delete, calls = S3Storage.delete, []

    def flaky(self, name):  # the first object refused, as a storage outage would
        calls.append(name)
        if len(calls) == 1:
            raise OSError("storage unavailable")
        real_delete(self, name)

    monkeypatch.setattr(S3Storage, "delete", flaky)
    with pytest.raises(EraseError):
        erase_user(owner)
    assert type(owner).objects.filter(pk=owner.pk).exists()
    assert Generation.objects.filter(pk=gen.pk).exists()
    assert UsageEntry.objects.filter(user=owner).count() == 1

    monkeypatch.undo()
    erase_user(owner)  # the retry: missing objects are fine
    assert not [k for k in s3.keys() if str(owner.public_id) in k]
    assert gen.input_image.name not in s3.keys()
    assert UsageEntry.objects.filter(user__isnull=True).count() == 1


def test_staff_deleting_a_user_in_the_admin_takes_the_same_path(
    s3, owner, staff, client, make_generation
):
    gen = with_photo_and_charge(owner, make_generation)
    client.force_login(staff)
    url = f"/admin/accounts/user/{owner.pk}/delete/"
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not type(owner).objects.filter(pk=owner.pk).exists()
    assert not [k for k in s3.keys() if str(owner.public_id) in k]
    assert gen.input_image.name not in s3.keys()
    assert UsageEntry.objects.get().user_id is None
