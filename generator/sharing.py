"""Share links' storage side: making, revoking, and the image URLs of the public page.

On S3 the public page shows presigned URLs that live SHARE_URL_SECONDS. A presigned URL names
its object key, and an original's key is generations/<user public id>/<generation>/…, which
would tell every visitor who made it (and tie all of one person's links together). So a link
gets its own server-side copies (CopyObject: no bytes through Easel) under
shared/<random>/<n>.<ext>, made when the link is, deleted when it is revoked or its row goes
(generator.signals; generator.erase lists them too). A revoked link's old URLs then stop
working at once instead of within their lifetime.

On local disk the page's images are Easel's own /s/<token>/<n>/ view, which checks the link on
every request (gallery.share_views): nothing outlives a revoke there, and no URL names a file.
"""

from __future__ import annotations

import logging
import secrets

from django.core.files.storage import default_storage
from django.db import transaction
from django.urls import reverse

from generator import storage
from generator.models import Generation, OutputImage, ShareLink

logger = logging.getLogger(__name__)

# How long an image URL handed out by a public page works (S3); short, because the page itself
# is never cached and a revoke must be felt soon even by a tab left open.
SHARE_URL_SECONDS = 300
SHARED_PREFIX = "shared/"
# Each live link on S3 holds copies of the images: a cap keeps a script from filling the bucket.
MAX_LIVE_LINKS = 10


class ShareRefused(Exception):
    """This generation cannot be shared (not completed, or it has no images)."""


class ShareStorageError(Exception):
    """Storage refused the copies; nothing was made — try again."""


def _bucket():
    return getattr(default_storage, "bucket", None)  # S3Storage only


def from_bucket() -> bool:
    """Whether shared images are presigned URLs of the bucket (else Easel's own view)."""
    return _bucket() is not None


def _copy_images(images: list[OutputImage]) -> list[str]:
    """Server-side copies of these originals under a fresh shared/ prefix (S3); [] elsewhere."""
    bucket = _bucket()
    if bucket is None:
        return []
    folder = f"{SHARED_PREFIX}{secrets.token_hex(12)}/"
    made: list[str] = []
    try:
        for image in images:
            name = f"{folder}{image.index}.{image.extension}"
            source = {
                "Bucket": bucket.name,
                "Key": default_storage._normalize_name(image.file.name),
            }
            bucket.Object(default_storage._normalize_name(name)).copy_from(CopySource=source)
            made.append(name)
    except Exception as exc:
        storage.delete_files(made)
        raise ShareStorageError("The images could not be prepared for sharing.") from exc
    return made


def create_link(
    gen: Generation, *, expiry: str, show_prompt: bool, allow_indexing: bool
) -> ShareLink:
    """A new live link to a completed generation of the caller's (ownership is checked by the
    view). Raises ShareRefused or ShareStorageError."""
    images = list(gen.images.all())
    if gen.status != Generation.Status.COMPLETED or not images:
        raise ShareRefused("Only a completed generation with images can be shared.")
    if gen.share_links.live().count() >= MAX_LIVE_LINKS:
        raise ShareRefused(f"This generation has {MAX_LIVE_LINKS} live links; revoke one first.")
    names = _copy_images(images)
    try:
        return ShareLink.objects.create(
            generation=gen,
            expires_at=ShareLink.expiry_for(expiry),
            show_prompt=show_prompt,
            allow_indexing=allow_indexing,
            stored_names=names,
        )
    except Exception:
        storage.delete_files(names)
        raise


def revoke_link(link: ShareLink) -> bool:
    """Revoke the link (the public page is a 404 from now on) and, once that is committed,
    delete its copies so the image URLs it handed out stop working too."""
    done = link.revoke()
    if done and link.stored_names:
        names = list(link.stored_names)
        transaction.on_commit(lambda: storage.delete_files(names))
    return done


def image_urls(link: ShareLink, images: list[OutputImage]) -> dict[int, str]:
    """{image index: URL} for the public page. S3: presigned URLs of the link's copies, valid
    SHARE_URL_SECONDS; local disk: the token-checked view (a path; the caller makes it absolute
    where it must be)."""
    if _bucket() is None:
        return {img.index: reverse("share:image", args=[link.token, img.index]) for img in images}
    copies = {name.rsplit("/", 1)[1].split(".", 1)[0]: name for name in link.stored_names}
    urls = {}
    for img in images:
        name = copies.get(str(img.index))
        if name:  # an image added after the link was made is not shared
            urls[img.index] = default_storage.url(name, expire=SHARE_URL_SECONDS)
    return urls
