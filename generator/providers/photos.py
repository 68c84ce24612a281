"""The input photo of a RoomFix-style generation, in the forms providers take it.

Every adapter that sends a photo gets it from here, so what reaches a provider is always Easel's
own stored copy (checked, turned upright and stripped of EXIF/GPS at upload, generator.imaging):

- `input_photo(gen)`: the bytes, their content type and a file name (for multipart uploads, a
  provider's files/assets API, or a data URI);
- `input_photo_url(gen)`: a presigned URL of that copy when storage is S3/R2/MinIO, living
  `EASEL_INPUT_URL_SECONDS` (default 1 h) but never past the generation's deadline; None on local
  disk, where Easel has no URL a provider could reach (its file views need a signed-in owner);
- `data_uri(photo)`: `data:<type>;base64,…` for APIs that take one inline.
"""

from __future__ import annotations

import base64
import mimetypes
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files.storage import default_storage

from generator.errors import StorageError

if TYPE_CHECKING:
    from generator.models import Generation

# Shortest lifetime a presigned input URL gets, even for a generation about to time out: a
# provider must still be able to fetch it once.
MIN_URL_SECONDS = 60


@dataclass(frozen=True)
class InputPhoto:
    data: bytes
    content_type: str
    name: str


def input_photo(gen: Generation) -> InputPhoto | None:
    """Easel's stored copy of the generation's photo, or None when it has none."""
    if not gen.input_image:
        return None
    name = gen.input_image.name
    try:
        with default_storage.open(name, "rb") as handle:
            data = handle.read()
    except Exception as exc:  # OSError on disk; botocore's ClientError and friends on S3
        raise StorageError(
            f"Easel could not read the input photo from its storage ({type(exc).__name__}); "
            "nothing was sent to the provider."
        ) from None
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return InputPhoto(data=data, content_type=content_type, name=name.rsplit("/", 1)[-1])


def photo_urls_reachable() -> bool:
    """Whether Easel can hand a provider a URL of the photo (S3-compatible storage only)."""
    return settings.STORAGE_BACKEND == "s3"


def url_lifetime(gen: Generation) -> int:
    """Seconds a presigned input URL lives: EASEL_INPUT_URL_SECONDS, cut to what is left of the
    generation's time (started_at + the model's timeout_seconds), at least MIN_URL_SECONDS."""
    lifetime = int(settings.EASEL_INPUT_URL_SECONDS)
    if gen.started_at is not None:
        left = gen.started_at.timestamp() + gen.model.timeout_seconds - time.time()
        lifetime = min(lifetime, int(left))
    return max(MIN_URL_SECONDS, lifetime)


def input_photo_url(gen: Generation) -> str | None:
    """A presigned URL of the stored photo, or None (no photo, or storage is local disk)."""
    if not gen.input_image or not photo_urls_reachable():
        return None
    return default_storage.url(gen.input_image.name, expire=url_lifetime(gen))


def data_uri(photo: InputPhoto) -> str:
    return f"data:{photo.content_type};base64,{base64.b64encode(photo.data).decode('ascii')}"
