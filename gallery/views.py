"""Each user's own history: a filtered, keyset-paginated grid and one page per generation."""

from __future__ import annotations

import mimetypes

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from gallery.forms import GalleryFilterForm, make_cursor
from gallery.images import attach_image_urls
from generator.models import Generation, OutputImage


def get_generation_for_user(request: HttpRequest, public_id: str) -> Generation:
    """The one ownership check: another user's generation is a 404, never a 403."""
    return get_object_or_404(
        Generation.objects.select_related("model").prefetch_related("images"),
        public_id=public_id,
        user=request.user,
    )


@login_required
@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    form = GalleryFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "gallery/bad_filter.html", {"form": form}, status=400)
    data = form.cleaned_data
    base = Generation.objects.for_user(request.user)
    qs = base.for_model(data["model"]).with_status(data["status"] or None)
    if data["cursor"]:
        qs = qs.after_cursor(*data["cursor"])
    size = data["page_size"]
    page = list(
        qs.select_related("model").prefetch_related("images").newest_first()[: size + 1]
    )
    next_cursor = make_cursor(page[size - 1]) if len(page) > size else ""
    page = page[:size]
    attach_image_urls(page)
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "form": form,
        "page": page,
        "next_cursor": next_cursor,
        "base_query": query.urlencode(),
        "is_first_page": not data["cursor"],
        "filtered": bool(data["model"] or data["status"]),
    }
    return render(request, "gallery/list.html", context)


@login_required
@require_GET
def detail(request: HttpRequest, public_id: str) -> HttpResponse:
    gen = get_generation_for_user(request, public_id)
    attach_image_urls([gen])
    return render(request, "gallery/detail.html", {"gen": gen})


@login_required
@require_GET
def image_file(request: HttpRequest, public_id: str, index: int, kind: str) -> FileResponse:
    """Image bytes from local storage, for the image's owner (and staff) only."""
    filters = {"generation__public_id": public_id, "index": index}
    if not request.user.is_staff:
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
