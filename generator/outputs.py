"""Provider outputs → Easel's storage: validate with Pillow, store original + WebP thumbnail."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from PIL import Image

from generator.downloads import download
from generator.errors import InvalidImage, StorageError
from generator.imaging import check_image, decode_data_uri, make_thumbnail, unwrap_json_output
from generator.models import Generation, OutputImage
from generator.providers.base import ImageOutput, Provider
from generator.storage import delete_files

logger = logging.getLogger(__name__)


@dataclass
class CheckedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    provider_url: str = ""
    thumbnail: bytes = b""


def fetch(output: ImageOutput, provider: Provider) -> CheckedImage:
    provider_url = served_as = ""
    if output.data is not None:
        data = output.data
    elif output.url and output.url.startswith("data:"):
        data = decode_data_uri(output.url)
    elif output.url:
        provider_url = output.url
        got = download(
            output.url,
            allow_private=provider.download_allows_private(),
            headers=provider.download_headers(output.url),
        )
        data = got.data
        served_as = got.content_type
        if got.content_type.startswith("application/json") or data[:1] in (b"{", b"["):
            data = unwrap_json_output(data) or data
    else:
        raise InvalidImage("The provider reported an output without data or a URL.")
    try:
        content_type, width, height = check_image(data)
    except InvalidImage as exc:
        if served_as and "not an image" in exc.message:
            raise InvalidImage(
                f"The provider's output is not an image (it was {served_as})."
            ) from None
        raise
    try:
        # Decodes every pixel, so a truncated file that passed verify() is caught here.
        thumbnail = make_thumbnail(data)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage("The image has too many pixels (decompression bomb refused).") from None
    except Exception as exc:
        raise InvalidImage(
            f"The provider's output is a damaged image ({type(exc).__name__})."
        ) from None
    return CheckedImage(data, content_type, width, height, provider_url, thumbnail)


def check_outputs(outputs: list[ImageOutput], provider: Provider) -> list[CheckedImage]:
    if not outputs:
        raise InvalidImage("The provider finished without returning any image.")
    return [fetch(output, provider) for output in outputs]


def _write_files(gen: Generation, checked: list[CheckedImage], skip=()) -> list[OutputImage]:
    """Save each image and its thumbnail to storage; the rows are returned unsaved. If a
    write fails, the files already written are removed and the error is raised."""
    rows: list[OutputImage] = []
    # Names of this attempt's own: two attempts on one generation (a recheck racing the
    # original after an outage) once both wrote 0_thumb.webp (storage's exists-then-write naming
    # is not atomic), and the loser's clean-up deleted the winner's thumbnail (test_multinode).
    attempt = secrets.token_hex(4)
    with _removed_on_error(gen, rows):
        for index, image in enumerate(checked):
            if index in skip:
                continue
            ext = image.content_type.split("/")[1].replace("jpeg", "jpg")
            row = OutputImage(
                generation=gen,
                index=index,
                width=image.width,
                height=image.height,
                bytes=len(image.data),
                content_type=image.content_type,
                thumbnail_bytes=len(image.thumbnail),
                sha256=hashlib.sha256(image.data).hexdigest(),
                provider_url=image.provider_url,
            )
            rows.append(row)
            row.file.save(f"{index}_{attempt}.{ext}", ContentFile(image.data), save=False)
            row.thumbnail.save(
                f"{index}_{attempt}_thumb.webp", ContentFile(image.thumbnail), save=False
            )
    return rows


@contextlib.contextmanager
def _removed_on_error(gen: Generation, rows: list[OutputImage]):
    """If the block fails, the files of `rows` are removed again. An IntegrityError is raised
    as it is, for the caller to judge; any other error becomes a readable StorageError."""
    try:
        yield
    except BaseException as exc:
        _remove_files(rows)
        if isinstance(exc, Exception) and not isinstance(exc, IntegrityError):
            logger.exception("Storing the images of %s failed", gen.public_id)
            raise StorageError(
                f"Easel could not save the images to its storage ({type(exc).__name__})."
            ) from None
        raise


def store_outputs(gen: Generation, outputs: list[ImageOutput], provider: Provider) -> int:
    """Download and check every output first, then store them all: a bad one stores nothing.

    Files are written before the rows; if anything fails after that (storage error, another
    worker that stored the same generation meanwhile, the generation deleted meanwhile) every
    file this call wrote is removed again, so storage never keeps an object without a row.
    """
    checked = check_outputs(outputs, provider)
    existing = set(gen.images.values_list("index", flat=True))
    # a redelivered task never stores an image twice
    rows = _write_files(gen, checked, skip=existing)
    try:
        with _removed_on_error(gen, rows), transaction.atomic():
            OutputImage.objects.bulk_create(rows)
    except IntegrityError:
        if not Generation.objects.filter(pk=gen.pk).exists():
            logger.info("Generation %s was deleted while its images were stored", gen.public_id)
            return 0
        stored = set(gen.images.values_list("index", flat=True))
        if stored >= set(range(len(checked))):
            return 0  # another worker stored them all meanwhile: keep theirs
        raise
    return len(rows)


def store_and_complete(gen: Generation, outputs: list[ImageOutput], provider: Provider) -> bool:
    """Store the images and mark `gen` completed in one transaction, only if it is still
    running: canceled, finished or deleted while the provider worked keeps nothing.

    Images are stored only with the completion in the same commit, so a running generation
    has none and no earlier rows need to be looked up. Returns whether it completed.
    """
    checked = check_outputs(outputs, provider)
    rows = _write_files(gen, checked)
    try:
        with _removed_on_error(gen, rows):
            done = gen.complete_with_images(rows)
    except IntegrityError:
        # Rows stored by another path (an older worker, meteron_sync) for this generation:
        # keep theirs and store the rest the careful way.
        gen.refresh_from_db(fields=["status"])
        if gen.status != Generation.Status.RUNNING:
            return False
        store_outputs(gen, outputs, provider)
        return gen.complete()
    if not done:
        _remove_files(rows)
    return done


def _remove_files(rows: list[OutputImage]) -> None:
    delete_files([name for row in rows for name in (row.file.name, row.thumbnail.name) if name])
