"""URLs for stored images, minted when a page needs them.

S3/R2/MinIO: a presigned URL per object key, cached until shortly before it expires, so a page
of 200 images signs nothing it signed on the previous view. Local disk: a URL of Easel's own
owner-checked view; files are never served from a public folder.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.urls import reverse

from generator.counters import PRESIGN_KEY, PRESIGN_SAFETY_MARGIN
from generator.models import Generation, OutputImage


def _uses_presigned_urls() -> bool:
    return settings.STORAGE_BACKEND == "s3"


def presign_lifetime() -> int:
    """Seconds a presigned URL lives: AWS_QUERYSTRING_EXPIRE from the environment (default 1 h)."""
    return int(getattr(settings, "AWS_QUERYSTRING_EXPIRE", 3600))


def cache_timeout(lifetime: int) -> int:
    """How long a URL may be handed out again: until PRESIGN_SAFETY_MARGIN before it expires."""
    if lifetime > PRESIGN_SAFETY_MARGIN * 2:
        return lifetime - PRESIGN_SAFETY_MARGIN
    return max(1, lifetime // 2)


def _cache_key(name: str, lifetime: int) -> str:
    # The bucket and endpoint are part of the key: a URL for another bucket is never reused.
    where = f"{getattr(default_storage, 'endpoint_url', '')}|{getattr(default_storage, 'bucket_name', '')}"
    digest = hashlib.sha256(f"{where}|{name}".encode()).hexdigest()[:32]
    return f"{PRESIGN_KEY}:{lifetime}:{digest}"


def presigned_urls_until(names: Iterable[str]) -> dict[str, tuple[str, float]]:
    """{key: (presigned URL, until)} for object keys, from the cache where possible (one round
    trip). `until` is the epoch second up to which the URL may be handed out (it still has
    PRESIGN_SAFETY_MARGIN to live then), so whatever embeds it can be cached no longer than that."""
    names = list(dict.fromkeys(n for n in names if n))
    lifetime = presign_lifetime()
    keys = {_cache_key(n, lifetime): n for n in names}
    cached = cache.get_many(list(keys))
    urls = {keys[k]: v for k, v in cached.items()}
    missing = [n for n in names if n not in urls]
    if missing:
        timeout = cache_timeout(lifetime)
        until = time.time() + timeout
        fresh = {n: (default_storage.url(n, expire=lifetime), until) for n in missing}
        cache.set_many({_cache_key(n, lifetime): v for n, v in fresh.items()}, timeout=timeout)
        urls.update(fresh)
    return urls


def presigned_urls(names: Iterable[str]) -> dict[str, str]:
    """Presigned URLs for object keys, from the cache where possible (one round trip)."""
    return {name: url for name, (url, _) in presigned_urls_until(names).items()}


def presigned_download_url(image: OutputImage) -> str:
    """A short-lived URL that makes the bucket answer with Content-Disposition: attachment."""
    disposition = f'attachment; filename="{image.download_name}"'
    return default_storage.url(
        image.file.name,
        parameters={
            "ResponseContentDisposition": disposition,
            "ResponseContentType": image.content_type or "application/octet-stream",
        },
        expire=min(presign_lifetime(), 600),
    )


def local_url(image: OutputImage, kind: str) -> str:
    return reverse("gallery:image_file", args=[image.generation.public_id, image.index, kind])


def attach_image_urls(generations: Iterable[Generation]) -> float | None:
    """Set `thumb_url` and `url` on every prefetched image of these generations (see
    attach_urls)."""
    return attach_urls([img for gen in generations for img in gen.images.all()])


# Local disk, for API clients (a key, no session): a URL signed with SECRET_KEY that names the
# object and its expiry, served by gallery.files.signed_file. The lifetime of a presigned URL.
FILE_SIGNER = signing.TimestampSigner(salt="easel.signed-file")


def signed_local_url(name: str, lifetime: int | None = None) -> str:
    expires = int(time.time()) + (lifetime or presign_lifetime())
    token = FILE_SIGNER.sign_object({"n": name, "e": expires})
    return reverse("gallery:signed_file", args=[token])


def signed_name(token: str) -> str | None:
    """The object a signed_local_url names, or None (forged, altered or expired)."""
    try:
        data = FILE_SIGNER.unsign_object(token)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or int(data.get("e", 0)) < time.time():
        return None
    return str(data.get("n") or "") or None


def attach_urls(images: list[OutputImage], *, for_api: bool = False) -> float | None:
    """Set `thumb_url` and `url` on these images (with `generation` loaded). `for_api`: URLs a
    client holding a key (no session) can fetch: on local disk, signed ones.

    Returns the epoch second until which all of these URLs may be handed out (None: they do
    not expire), the longest a page fragment that embeds them may be cached."""
    if not _uses_presigned_urls():
        for img in images:
            if for_api:
                img.url = signed_local_url(img.file.name)
                img.thumb_url = signed_local_url(img.thumbnail.name) if img.thumbnail else img.url
                continue
            img.url = local_url(img, "original")
            img.thumb_url = local_url(img, "thumb") if img.thumbnail else img.url
        return None
    urls = presigned_urls_until(
        [img.file.name for img in images] + [img.thumbnail.name for img in images]
    )
    for img in images:
        img.url = urls.get(img.file.name, ("", 0))[0]
        img.thumb_url = urls.get(img.thumbnail.name, ("", 0))[0] or img.url
    return min((until for _, until in urls.values()), default=None)


def input_photo_urls(generations: Iterable[Generation]) -> tuple[dict[int, str], float | None]:
    """{generation id: URL of the photo it started from} for those with one, and the epoch
    second until which the URLs may be handed out (None: they do not expire). S3: presigned
    (cached like the images'); local disk: Easel's owner-checked view."""
    with_photo = [gen for gen in generations if gen.input_image]
    if not _uses_presigned_urls():
        local = {g.pk: reverse("gallery:input_image", args=[g.public_id]) for g in with_photo}
        return local, None
    urls = presigned_urls_until(gen.input_image.name for gen in with_photo)
    found = {gen.pk: urls[gen.input_image.name][0] for gen in with_photo}
    return found, min((until for _, until in urls.values()), default=None)
