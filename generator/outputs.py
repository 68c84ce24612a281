"""Provider outputs → Easel's storage: validate with Pillow, store original + WebP thumbnail."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import logging
import warnings
from contextlib import nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, connections, router, transaction
from PIL import Image, ImageOps, UnidentifiedImageError

from generator import counters
from generator.downloads import DownloadError, download
from generator.models import Generation, OutputImage
from generator.providers.base import ImageOutput, Provider, ProviderError

logger = logging.getLogger(__name__)

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


class InvalidImage(DownloadError):
    pass


class StorageError(ProviderError):
    """Easel's own storage failed while saving outputs (the generation fails readably)."""


@dataclass
class CheckedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    provider_url: str = ""
    thumbnail: bytes = b""


def decode_data_uri(value: str) -> bytes:
    try:
        header, _, payload = value.partition(",")
        if ";base64" not in header:
            raise InvalidImage("The provider sent a data URI that is not base64.")
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("The provider sent image data that is not valid base64.") from None


def unwrap_json_output(data: bytes) -> bytes | None:
    """Meteron may store the model server's raw JSON, e.g. {"image": "data:image/png;base64,…"}."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None

    def walk(node):
        if isinstance(node, str) and node.startswith("data:image/"):
            return node
        if isinstance(node, dict):
            for value in node.values():
                if found := walk(value):
                    return found
        if isinstance(node, list):
            for value in node:
                if found := walk(value):
                    return found
        return None

    found = walk(body)
    return decode_data_uri(found) if found else None


def check_image(data: bytes) -> tuple[str, int, int]:
    """(content_type, width, height) of a real PNG/JPEG/WebP, or InvalidImage."""
    Image.MAX_IMAGE_PIXELS = settings.EASEL_MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, (width, height) = img.format, img.size
                if width * height > settings.EASEL_MAX_IMAGE_PIXELS:
                    raise InvalidImage(
                        "The image has too many pixels (decompression bomb refused)."
                    )
                img.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage("The image has too many pixels (decompression bomb refused).") from None
    except UnidentifiedImageError:
        raise InvalidImage("The provider's output is not an image.") from None
    except InvalidImage:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt files
        raise InvalidImage(
            f"The provider's output is a damaged image ({type(exc).__name__})."
        ) from None
    if fmt not in FORMATS:
        raise InvalidImage(f"The provider's output is a {fmt} image; PNG, JPEG or WebP expected.")
    return FORMATS[fmt], width, height


def make_thumbnail(data: bytes, size: int | None = None) -> bytes:
    size = size or settings.EASEL_THUMBNAIL_SIZE
    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img)
        img.thumbnail((size, size))
        if img.mode not in ("RGB", "RGBA"):
            img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        out = io.BytesIO()
        img.save(out, format="WEBP", quality=80, method=4)
        return out.getvalue()


def fetch(output: ImageOutput, provider: Provider) -> CheckedImage:
    provider_url = served_as = ""
    if output.data is not None:
        data = output.data
    elif output.url and output.url.startswith("data:"):
        data = decode_data_uri(output.url)
    elif output.url:
        provider_url = output.url
        got = download(output.url, allow_private=provider.download_allows_private())
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
            row.file.save(f"{index}.{ext}", ContentFile(image.data), save=False)
            row.thumbnail.save(f"{index}_thumb.webp", ContentFile(image.thumbnail), save=False)
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
    completion = Generation.completion()
    connection = connections[router.db_for_write(Generation, instance=gen)]
    try:
        with _removed_on_error(gen, rows):
            if connection.vendor == "postgresql":
                # One statement, atomic by itself; inside a caller's transaction a savepoint
                # keeps that transaction usable after a conflict.
                with transaction.atomic() if connection.in_atomic_block else nullcontext():
                    done = _complete_with_rows(connection, gen, completion, rows)
            else:
                with transaction.atomic():
                    done = gen._update_if([Generation.Status.RUNNING], **completion)
                    if done:
                        _insert(rows)
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
        return False
    counters.bump_user(gen.user_id)
    return True


def _complete_with_rows(connection, gen: Generation, completion: dict, rows: list) -> bool:
    """running → completed and the image rows in one statement (PostgreSQL's data-modifying
    WITH): atomic by itself, so one round trip instead of UPDATE, INSERT and COMMIT. The rows
    are inserted only if the UPDATE matched, i.e. the generation was still running."""
    update, update_params = gen._update_statement(
        connection, [Generation.Status.RUNNING], completion
    )
    # Typed, because a VALUES list outside an INSERT's own VALUES infers no column types.
    insert, values, params = _insert_parts(connection, rows, typed=True)
    sql = f"WITH done AS ({update} RETURNING id) {insert} SELECT v.* FROM done, ({values}) AS v"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*update_params, *params])
        done = cursor.rowcount > 0
    if done:
        gen._remember(completion)
    return done


def _insert(rows: list[OutputImage]) -> None:
    """What bulk_create does for these rows, as one plain INSERT: compiling the ORM's query
    cost more than running it. No pks are set."""
    connection = connections[router.db_for_write(OutputImage)]
    insert, values, params = _insert_parts(connection, rows)
    with connection.cursor() as cursor:
        cursor.execute(f"{insert} {values}", params)


def _insert_parts(connection, rows: list[OutputImage], typed: bool = False):
    """`INSERT INTO images (columns)`, `VALUES (…), (…)` and the params, from the fields' own
    pre_save and conversions. `typed` casts each value to its column's type."""
    qn = connection.ops.quote_name
    fields = [f for f in OutputImage._meta.concrete_fields if not f.primary_key]
    marks = [f"CAST(%s AS {f.db_type(connection)})" if typed else "%s" for f in fields]
    one = f"({', '.join(marks)})"
    insert = (
        f"INSERT INTO {qn(OutputImage._meta.db_table)} ({', '.join(qn(f.column) for f in fields)})"
    )
    params = [f.get_db_prep_save(f.pre_save(row, True), connection) for row in rows for f in fields]
    return insert, f"VALUES {', '.join([one] * len(rows))}", params


def _remove_files(rows: list[OutputImage]) -> None:
    from generator.storage import delete_files

    delete_files([name for row in rows for name in (row.file.name, row.thumbnail.name) if name])
