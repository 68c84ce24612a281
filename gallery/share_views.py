"""Share a generation (issue #18): the owner's Share form and Revoke button on the detail page,
and the public page a link opens, with no sign-in.

The public page never names who made it (no e-mail, username or user public id: its image URLs
are the link's own, see generator.sharing), is never cached anywhere (a revoke is felt on the
next request) and is `noindex` unless the owner opted in. An unknown, revoked or expired token,
and a generation that is gone or not completed, all get the same 404.
"""

from __future__ import annotations

import mimetypes

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from gallery.forms import ShareLinkForm
from gallery.views import render_detail
from generator import sharing
from generator.models import Generation, ShareLink
from generator.views import get_generation_for_user


def _detail_url(gen: Generation) -> str:
    return f"{reverse('gallery:detail', args=[gen.public_id])}#share"


@login_required
@require_POST
def create(request: HttpRequest, public_id: str) -> HttpResponse:
    gen = get_generation_for_user(request, public_id)
    form = ShareLinkForm(request.POST)
    if not form.is_valid():
        return render_detail(request, gen, share_form=form, status=400)
    try:
        sharing.create_link(gen, **form.cleaned_data)
    except sharing.ShareRefused as exc:
        form.add_error(None, str(exc))
        return render_detail(request, gen, share_form=form, status=409)
    except sharing.ShareStorageError as exc:
        form.add_error(None, f"{exc} Nothing was shared; please try again.")
        return render_detail(request, gen, share_form=form, status=503)
    messages.success(request, "Share link created. Anyone with it can see the images.")
    return redirect(_detail_url(gen))


@login_required
@require_POST
def revoke(request: HttpRequest, public_id: str) -> HttpResponse:
    gen = get_generation_for_user(request, public_id, Generation.objects.all())
    link_id = request.POST.get("link", "")
    if not link_id.isascii() or not link_id.isdigit() or len(link_id) > 18:
        return HttpResponseBadRequest("Say which link to revoke.")
    link = get_object_or_404(ShareLink.objects.filter(generation=gen), pk=int(link_id))
    if sharing.revoke_link(link):
        messages.success(request, "Link revoked: it no longer opens.")
    return redirect(_detail_url(gen))


def _live_link(token: str) -> ShareLink:
    """The one check of the public pages: the same 404 for every way a link does not open."""
    link = (
        ShareLink.objects.live()
        .filter(token=token, generation__status=Generation.Status.COMPLETED)
        .select_related("generation__model")
        .first()
    )
    if link is None:
        raise Http404
    return link


def _public(response: HttpResponse, link: ShareLink) -> HttpResponse:
    if not link.allow_indexing:
        response["X-Robots-Tag"] = "noindex"
    # The URL is the secret: it must not travel to the bucket's host (or anywhere) as a Referer.
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_safe
def shared_page(request: HttpRequest, token: str) -> HttpResponse:
    link = _live_link(token)
    gen = link.generation
    images = list(gen.images.all())
    urls = sharing.image_urls(link, images)
    shown = [img for img in images if img.index in urls]
    if not shown:
        raise Http404
    for img in shown:
        img.share_url = request.build_absolute_uri(urls[img.index])  # og:image is absolute
    link.record_view()
    title = gen.prompt if link.show_prompt else "A picture made with Easel"
    context = {
        "link": link,
        "gen": gen,
        "images": shown,
        "cover": shown[0],
        "title": title,
        "page_url": request.build_absolute_uri(),
    }
    return _public(render(request, "gallery/shared.html", context), link)


@require_safe
def shared_image(request: HttpRequest, token: str, index: int) -> HttpResponse:
    """One image of a live link. Local disk: the bytes, checked against the link on every
    request. S3: a redirect to a short presigned URL of the link's copy."""
    link = _live_link(token)
    image = get_object_or_404(link.generation.images, index=index)
    if sharing.from_bucket():
        url = sharing.image_urls(link, [image]).get(index)
        if not url:
            raise Http404
        response: HttpResponse = HttpResponseRedirect(url)
        response["Cache-Control"] = "no-store"
        return _public(response, link)
    try:
        handle = default_storage.open(image.file.name, "rb")
    except FileNotFoundError:
        raise Http404 from None
    response = FileResponse(
        handle, content_type=image.content_type or mimetypes.guess_type(image.file.name)[0]
    )
    # As long as an S3 URL of a shared image lives; the page itself is never kept.
    response["Cache-Control"] = f"private, max-age={sharing.SHARE_URL_SECONDS}"
    return _public(response, link)
