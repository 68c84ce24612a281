"""ZIP exports of a filtered gallery view (issue #18): start one, watch it, download it.

The filter is the gallery's own form (GalleryFilterForm), so an export holds exactly what the
filtered view lists, every page of it. Another user's export is a 404; so is the download link
once the export has expired.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from gallery.forms import FILTER_KEYS, GalleryFilterForm
from generator.export_tasks import start_export
from generator.image_urls import presign_lifetime
from generator.models import Export, ExportRefused

# A presigned download lives this long at most (the page's link is Easel's own URL, valid
# until the export expires; each click mints a fresh one).
DOWNLOAD_URL_SECONDS = 600


def get_export_for_user(request: HttpRequest, public_id: str) -> Export:
    return get_object_or_404(
        Export.objects.select_related("user"), public_id=public_id, user=request.user
    )


def _gallery_query(data: QueryDict) -> str:
    query = QueryDict(mutable=True)
    for key in FILTER_KEYS:
        if data.get(key):
            query[key] = data[key]
    return query.urlencode()


@login_required
@require_POST
def start(request: HttpRequest) -> HttpResponse:
    """The gallery's "Download these as ZIP": its filters come as the form's fields."""
    form = GalleryFilterForm(request.POST)
    if not form.is_valid():
        return render(request, "gallery/bad_filter.html", {"form": form}, status=400)
    query = _gallery_query(request.POST)
    back = reverse("gallery:list") + (f"?{query}" if query else "")
    try:
        export = start_export(request.user, form.criteria(), query)
    except ExportRefused as exc:
        messages.error(request, str(exc))
        going = Export.objects.for_user(request.user).active().first()
        if going is not None:  # the one in progress: its page, to watch it
            return redirect("gallery:export", public_id=going.public_id)
        return redirect(back)
    return redirect("gallery:export", public_id=export.public_id)


def _state(export: Export) -> dict:
    expired = export.status == Export.Status.COMPLETED and not export.downloadable
    return {
        "status": export.status,
        "status_label": "Expired" if expired else export.get_status_display(),
        "done": export.done,
        "total": export.total,
        "error": export.error,
        "expired": expired,
        "download_url": reverse("gallery:export_download", args=[export.public_id])
        if export.downloadable
        else "",
        "expires_at": export.expires_at.isoformat() if export.expires_at else None,
        "bytes": export.bytes,
    }


@login_required
@require_GET
def detail(request: HttpRequest, public_id: str) -> HttpResponse:
    export = get_export_for_user(request, public_id)
    back = reverse("gallery:list") + (f"?{export.query}" if export.query else "")
    context = {"export": export, "state": _state(export), "gallery_url": back}
    return render(request, "gallery/export.html", context)


@login_required
@require_GET
def status(request: HttpRequest, public_id: str) -> JsonResponse:
    """What the page's progress bar polls (static/js/export.js), once a second."""
    response = JsonResponse(_state(get_export_for_user(request, public_id)))
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def download(request: HttpRequest, public_id: str) -> HttpResponse:
    """The archive as an attachment, until the export expires (then a 404)."""
    export = get_export_for_user(request, public_id)
    if not export.downloadable:
        raise Http404
    if settings.STORAGE_BACKEND == "s3":
        remaining = int((export.expires_at - timezone.now()).total_seconds())
        url = default_storage.url(
            export.file_name,
            parameters={
                "ResponseContentDisposition": f'attachment; filename="{export.download_name}"',
                "ResponseContentType": "application/zip",
            },
            expire=max(1, min(DOWNLOAD_URL_SECONDS, presign_lifetime(), remaining)),
        )
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = "no-store"
        return response
    try:
        handle = default_storage.open(export.file_name, "rb")
    except FileNotFoundError:
        raise Http404 from None
    response = FileResponse(
        handle, content_type="application/zip", as_attachment=True, filename=export.download_name
    )
    response["Cache-Control"] = "private, no-store"
    return response
