"""Input images (RoomFix-style "a photo of my room"): checked, turned upright, stripped, re-encoded.

Only JPEG, PNG and WebP are accepted, below a byte cap and a pixel cap. The file that reaches
storage is a fresh encode by Pillow: the EXIF orientation is applied to the pixels and no
metadata (EXIF, GPS, ICC, XMP, comments) survives.
"""

from __future__ import annotations

import io
import secrets
import warnings

from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}


class InputImageError(ValueError):
    """The upload is not usable; the message is for the person who uploaded it."""


def clean_input_image(upload) -> ContentFile:
    max_bytes = settings.EASEL_INPUT_MAX_BYTES
    max_pixels = settings.EASEL_INPUT_MAX_PIXELS
    if upload.size > max_bytes:
        raise InputImageError(
            f"The photo is {upload.size / 1_048_576:.1f} MB; the limit is "
            f"{max_bytes / 1_048_576:.0f} MB."
        )
    raw = upload.read()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(raw))
            fmt = probe.format
            width, height = probe.size
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        ValueError,
    ):
        raise InputImageError("That file is not a JPEG, PNG or WebP image.") from None
    if fmt not in ACCEPTED:
        raise InputImageError(f"{fmt or 'That'} images are not accepted; use JPEG, PNG or WebP.")
    if width * height > max_pixels:
        raise InputImageError(
            f"The photo is {width}×{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels."
        )
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
        image = ImageOps.exif_transpose(image)  # upright, and drops the orientation tag
    except (OSError, ValueError, SyntaxError):
        raise InputImageError("The image is damaged and could not be read.") from None
    has_alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
    image = image.convert("RGBA" if has_alpha and fmt != "JPEG" else "RGB")
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, format="JPEG", quality=92, optimize=True)
    elif fmt == "WEBP":
        image.save(out, format="WEBP", quality=92)
    else:
        image.save(out, format="PNG", optimize=False)
    ext = ACCEPTED[fmt][0]
    return ContentFile(out.getvalue(), name=f"{secrets.token_urlsafe(12)}.{ext}")
