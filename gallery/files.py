"""Image bytes for their owner: the input photo, local-disk originals and thumbnails, and
downloads as attachments (on S3, a presigned URL that makes the bucket answer as one)."""

from __future__ import annotations

import mimetypes

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from generator.image_urls import presigned_download_url, signed_name
from generator.models import OutputImage
from generator.views import get_generation_for_user


@login_required
@require_GET
def input_image(request: HttpRequest, public_id: str) -> FileResponse:
    """The uploaded input image (local storage), for its owner only."""
    gen = get_generation_for_user(request, public_id)
    if not gen.input_image:
        raise Http404
    try:
        handle = default_storage.open(gen.input_image.name, "rb")
    except FileNotFoundError:
        raise Http404 from None
    response = FileResponse(
        handle, content_type=mimetypes.guess_type(gen.input_image.name)[0] or "image/png"
    )
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_GET
def image_file(request: HttpRequest, public_id: str, index: int, kind: str) -> FileResponse:
    """Image bytes from local storage, for the image's owner (and staff) only."""
    filters = {"generation__public_id": public_id, "index": index}
    if not request.user.has_perm("generator.view_outputimage"):  # staff with the permission
        filters["generation__user"] = request.user
    image = get_object_or_404(OutputImage.objects.select_related("generation"), **filters)
    field = image.thumbnail if kind == "thumb" else image.file
    if kind not in ("thumb", "original", "download") or not field:
        raise Http404
    try:
        handle = default_storage.open(field.name, "rb")
    except FileNotFoundError:
        raise Http404 from None
    content_type = "image/webp" if kind == "thumb" else image.content_type
    response = FileResponse(
        handle,
        content_type=content_type or mimetypes.guess_type(field.name)[0],
        as_attachment=kind == "download",
        filename=image.download_name if kind == "download" else None,
    )
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_GET
def download(request: HttpRequest, public_id: str, index: int) -> HttpResponse:
    """The original file as an attachment with a readable filename, for its owner only."""
    gen = get_generation_for_user(request, public_id)
    image = next((img for img in gen.images.all() if img.index == index), None)
    if image is None or not image.file:
        raise Http404
    if settings.STORAGE_BACKEND == "s3":
        # The bucket serves the bytes; the signed URL makes it answer as an attachment.
        response = HttpResponseRedirect(presigned_download_url(image))
        response["Cache-Control"] = "no-store"
        return response
    try:
        handle = default_storage.open(image.file.name, "rb")
    except FileNotFoundError:
        raise Http404 from None
    response = FileResponse(
        handle,
        content_type=image.content_type or "application/octet-stream",
        as_attachment=True,
        filename=image.download_name,
    )
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
def signed_file(request: HttpRequest, token: str) -> FileResponse:
    """An image named by a signed, expiring token (image_urls.signed_local_url): what Easel's
    API hands a key holder on local disk, who has no session. Anything else is a 404."""
    name = signed_name(token)
    if name is None:
        raise Http404
    try:
        handle = default_storage.open(name, "rb")
    except (FileNotFoundError, ValueError):
        raise Http404 from None
    response = FileResponse(handle, content_type=mimetypes.guess_type(name)[0] or "image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response
