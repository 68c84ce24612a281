"""Delete and download on local disk; thumbnails; the storage_maintenance command.

Local storage is the embedded default: files under MEDIA_ROOT, served only through Easel's
owner-checked views. (The same operations against an S3 server are in test_storage_s3.py.)
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import Client
from PIL import Image

from generator.models import Generation, OutputImage
from generator.tasks import run_generation

pytestmark = pytest.mark.django_db
Q = Generation.Status


@pytest.fixture
def completed(owner, make_generation):
    def make(**kw) -> Generation:
        gen = make_generation(owner, status=Q.QUEUED, **kw)
        run_generation(gen.pk)
        gen.refresh_from_db()
        assert gen.status == Q.COMPLETED, gen.error
        return gen

    return make


def files_on_disk() -> set[str]:
    root = Path(django_settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def names(gen: Generation) -> set[str]:
    return {n for img in gen.images.all() for n in (img.file.name, img.thumbnail.name)}


# --- thumbnails ---------------------------------------------------------------------------


def test_each_image_gets_a_webp_thumbnail_beside_it_with_its_facts_recorded(completed, settings):
    gen = completed(options={"size": "800x600"}, num_images=2)
    images = list(gen.images.all())
    assert len(images) == 2
    for image in images:
        assert Path(image.thumbnail.name).parent == Path(image.file.name).parent
        assert image.thumbnail.name.endswith("_thumb.webp")
        assert (image.width, image.height, image.content_type) == (800, 600, "image/png")
        assert image.bytes == default_storage.size(image.file.name)
        assert image.thumbnail_bytes == default_storage.size(image.thumbnail.name)
        with Image.open(default_storage.open(image.thumbnail.name)) as thumb:
            assert thumb.format == "WEBP"
            assert max(thumb.size) == settings.EASEL_THUMBNAIL_SIZE
    assert files_on_disk() == names(gen)


def test_the_grid_lazy_loads_thumbnails_and_the_detail_page_shows_originals(
    owner_client, completed
):
    gen = completed()
    image = gen.images.get()
    grid = owner_client.get("/gallery/").content.decode()
    thumb = f"/gallery/{gen.public_id}/images/0/thumb/"
    assert re.search(rf'<img src="{thumb}"[^>]*loading="lazy"', grid)
    detail = owner_client.get(f"/gallery/{gen.public_id}/").content.decode()
    assert f'src="/gallery/{gen.public_id}/images/0/original/"' in detail
    got = owner_client.get(thumb)
    assert got["Content-Type"] == "image/webp"
    assert b"".join(got.streaming_content) == default_storage.open(image.thumbnail.name).read()


# --- download -----------------------------------------------------------------------------


def test_download_gives_the_original_as_an_attachment_with_a_readable_name(owner_client, completed):
    gen = completed()
    image = gen.images.get()
    detail = owner_client.get(f"/gallery/{gen.public_id}/").content.decode()
    assert f'href="/gallery/{gen.public_id}/download/0/"' in detail
    response = owner_client.get(f"/gallery/{gen.public_id}/download/0/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="easel-{gen.public_id}-1.png"'
    assert response["Content-Type"] == "image/png"
    body = b"".join(response.streaming_content)
    assert body == default_storage.open(image.file.name).read()
    assert Image.open(io.BytesIO(body)).size == (image.width, image.height)


def test_a_stranger_gets_404_for_download_delete_and_image_files(client, stranger, completed):
    gen = completed()
    client.force_login(stranger)
    for url in (
        f"/gallery/{gen.public_id}/download/0/",
        f"/gallery/{gen.public_id}/delete/",
        f"/gallery/{gen.public_id}/images/0/original/",
        f"/gallery/{gen.public_id}/images/0/thumb/",
        f"/gallery/{gen.public_id}/images/0/download/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/gallery/{gen.public_id}/delete/").status_code == 404
    assert Generation.objects.filter(pk=gen.pk).exists()
    assert files_on_disk() == names(gen)


def test_a_missing_image_index_is_a_404(owner_client, completed):
    gen = completed()
    assert owner_client.get(f"/gallery/{gen.public_id}/download/5/").status_code == 404


def test_signed_out_visitors_are_sent_to_log_in(client, completed):
    gen = completed()
    response = client.get(f"/gallery/{gen.public_id}/download/0/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- delete -------------------------------------------------------------------------------


def test_delete_asks_first_then_removes_the_row_and_its_files(
    owner_client, completed, django_capture_on_commit_callbacks
):
    gen, keep = completed(), completed()
    detail = owner_client.get(f"/gallery/{gen.public_id}/").content.decode()
    assert f'href="/gallery/{gen.public_id}/delete/"' in detail
    confirm = owner_client.get(f"/gallery/{gen.public_id}/delete/")
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "Delete this generation?" in page and "csrfmiddlewaretoken" in page
    assert f'action="/gallery/{gen.public_id}/delete/"' in page and 'method="post"' in page
    assert Generation.objects.filter(pk=gen.pk).exists()  # GET changes nothing

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/gallery/{gen.public_id}/delete/", follow=True)
    assert response.redirect_chain[-1][0] == "/gallery/"
    assert "were deleted" in response.content.decode()
    assert not Generation.objects.filter(pk=gen.pk).exists()
    assert not OutputImage.objects.filter(generation_id=gen.pk).exists()
    assert files_on_disk() == names(keep)


def test_delete_without_a_csrf_token_is_refused(owner, completed):
    gen = completed()
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(f"/gallery/{gen.public_id}/delete/").status_code == 403
    assert Generation.objects.filter(pk=gen.pk).exists()


def test_deleting_a_queued_generation_cancels_it_first(owner_client, owner, make_generation):
    gen = make_generation(owner, status=Q.QUEUED)
    response = owner_client.post(f"/gallery/{gen.public_id}/delete/")
    assert response.status_code == 302
    assert not Generation.objects.filter(pk=gen.pk).exists()


def test_a_rolled_back_delete_keeps_the_files(completed, django_capture_on_commit_callbacks):
    from django.db import transaction

    gen = completed()
    before = files_on_disk()

    class Abort(Exception):
        pass

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Abort), transaction.atomic():
            gen.delete()
            raise Abort
    assert callbacks == []  # the file removal was discarded with the transaction
    assert files_on_disk() == before
    assert Generation.objects.filter(public_id=gen.public_id).exists()


def test_deleting_a_user_removes_their_files(owner, completed, django_capture_on_commit_callbacks):
    completed()
    assert files_on_disk()
    with django_capture_on_commit_callbacks(execute=True):
        owner.delete()
    assert files_on_disk() == set()


def test_staff_bulk_delete_in_the_admin_removes_generations_and_files(
    client, staff, owner, completed, make_generation, django_capture_on_commit_callbacks
):
    a, b, keep = completed(), completed(), completed()
    running = make_generation(owner, status=Q.RUNNING)
    client.force_login(staff)
    changelist = client.get("/admin/generator/generation/")
    assert "delete_with_files" in changelist.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/generator/generation/",
            {"action": "delete_with_files", "_selected_action": [a.pk, b.pk, running.pk]},
            follow=True,
        )
    assert "Deleted 3 generation(s) and 4 stored file(s)." in response.content.decode()
    assert list(Generation.objects.values_list("pk", flat=True)) == [keep.pk]
    assert files_on_disk() == names(keep)


# --- storage_maintenance ----------------------------------------------------------------------


def run_maintenance(*args: str) -> str:
    out = io.StringIO()
    call_command("storage_maintenance", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_maintenance_removes_orphans_and_recreates_missing_thumbnails(owner, completed):
    gen, other = completed(), completed()
    image, other_image = gen.images.get(), other.images.get()
    orphan = f"generations/{owner.public_id}/g_deleted/0.png"
    default_storage.save(orphan, io.BytesIO(b"left behind"))
    default_storage.delete(image.thumbnail.name)  # lost file
    OutputImage.objects.filter(pk=other_image.pk).update(thumbnail="", thumbnail_bytes=None)
    default_storage.delete(other_image.thumbnail.name)  # never recorded

    dry = run_maintenance("--dry-run", "--min-age", "0")
    assert f"orphan: {orphan}" in dry
    assert "Dry run: 1 orphaned object(s) found, would be removed" in dry
    assert "2 missing thumbnail(s) found, would be re-created" in dry
    assert default_storage.exists(orphan)

    out = run_maintenance("--min-age", "0")
    assert "1 orphaned object(s) removed; 2 thumbnail(s) re-created." in out
    assert not default_storage.exists(orphan)
    for img in (image, other_image):
        img.refresh_from_db()
        assert img.thumbnail.name.endswith("_thumb.webp")
        assert img.thumbnail_bytes == default_storage.size(img.thumbnail.name)
        with Image.open(default_storage.open(img.thumbnail.name)) as thumb:
            assert thumb.format == "WEBP"
    assert files_on_disk() == names(gen) | names(other)

    again = run_maintenance("--min-age", "0")
    assert "0 orphaned object(s) removed; 0 thumbnail(s) re-created." in again


def test_maintenance_keeps_recent_unreferenced_files_a_worker_may_still_be_saving(owner, completed):
    completed()
    fresh = f"generations/{owner.public_id}/g_in_flight/0.png"
    default_storage.save(fresh, io.BytesIO(b"being stored"))
    out = run_maintenance()  # default --min-age 60 minutes
    assert "1 recent unreferenced object(s) kept" in out
    assert default_storage.exists(fresh)


def test_maintenance_reports_an_image_whose_original_is_gone(completed):
    image = completed().images.get()
    default_storage.delete(image.file.name)
    default_storage.delete(image.thumbnail.name)
    out = run_maintenance("--min-age", "0", "--skip-orphans")
    assert "could not re-create the thumbnail" in out
    assert "1 thumbnail(s) could not be re-created" in out


def test_staff_see_another_users_image_files_only_with_the_permission(
    client, django_user_model, staff, completed
):
    """is_staff opens the admin, not every user's images: the file view asks for
    generator.view_outputimage (superusers have every permission)."""
    gen = completed()
    url = f"/gallery/{gen.public_id}/images/0/thumb/"
    bare = django_user_model.objects.create_user(
        email="bare-staff@example.com", password="pw-Secret-123", is_staff=True
    )
    client.force_login(bare)
    assert client.get(url).status_code == 404
    client.force_login(staff)
    assert client.get(url).status_code == 200
