"""Write an export's ZIP (issue #18): every image of the filtered view plus metadata.json and
metadata.csv, into Easel's storage at Export.storage_name.

Memory stays flat at any size: the generations are read with .iterator() in chunks (their
images one query per chunk, as plain tuples, only the columns written), each image is copied from storage in chunks
(shutil.copyfileobj) straight into its zip entry, and the metadata rows go to two files on
disk as they are made; the archive is a temporary file on disk, copied to storage at the end.
Images are stored, not deflated (PNG/JPEG/WebP are compressed already); the metadata is
deflated. bench/export_memory.py measures the peak (bench/RESULTS.md).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from itertools import islice
from typing import NamedTuple

from django.core.files import File
from django.core.files.storage import default_storage

from generator.models import Export, Generation, OutputImage
from generator.models.images import download_name

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 25  # images between two progress writes
CHUNK = 256 * 1024  # bytes per read from storage
ROWS_PER_QUERY = 200  # generations per database round trip
IMAGES_DIR = "images/"
CSV_FIELDS = [
    "id",
    "prompt",
    "negative_prompt",
    "model",
    "provider",
    "seed",
    "options",
    "status",
    "created_at",
    "finished_at",
    "images",
]


class ExportStopped(Exception):
    """The row left `running` while the archive was written (the cleanup failed it)."""


class Image(NamedTuple):
    name: str  # the object's key in storage
    index: int
    content_type: str
    bytes: int


def rows(export: Export) -> Iterator[tuple[Generation, list[Image]]]:
    """The export's generations with their images, one database chunk at a time.

    Images are read as plain tuples, not models and not with prefetch_related: a model's
    FieldFile points back at its instance, and a prefetch ties generations and images
    together, reference cycles that only the garbage collector's rare full pass frees, so
    memory grew with the export's size (bench/export_memory.py). Plain tuples are freed as
    soon as the next chunk is read."""
    generations = (
        export.generations_queryset()
        .select_related("model")
        .only(
            "id",
            "public_id",
            "prompt",
            "negative_prompt",
            "model__slug",
            "provider",
            "seed",
            "options",
            "status",
            "created_at",
            "finished_at",
        )
        .iterator(chunk_size=ROWS_PER_QUERY)
    )
    while chunk := list(islice(generations, ROWS_PER_QUERY)):
        images: dict[int, list[Image]] = {gen.pk: [] for gen in chunk}
        found = (
            OutputImage.objects.filter(generation_id__in=list(images))
            .exclude(file="")
            .order_by("generation_id", "index")
            .values_list("generation_id", "file", "index", "content_type", "bytes")
        )
        for generation_id, *image in found:
            images[generation_id].append(Image(*image))
        for gen in chunk:
            yield gen, images.pop(gen.pk)


def metadata(gen: Generation, names: list[str]) -> dict:
    return {
        "id": gen.public_id,
        "prompt": gen.prompt,
        "negative_prompt": gen.negative_prompt,
        "model": gen.model.slug,
        "provider": gen.provider,
        "seed": gen.seed,
        "options": gen.options,
        "status": gen.status,
        "created_at": gen.created_at.isoformat(),
        "finished_at": gen.finished_at.isoformat() if gen.finished_at else None,
        "images": names,
    }


def csv_row(meta: dict) -> list:
    return [
        *(meta[k] if meta[k] is not None else "" for k in CSV_FIELDS[:6]),
        json.dumps(meta["options"], sort_keys=True),
        meta["status"],
        meta["created_at"],
        meta["finished_at"] or "",
        " ".join(meta["images"]),  # file names have no spaces
    ]


def _copy_image(zf: zipfile.ZipFile, gen: Generation, image: Image) -> str | None:
    """Copy one stored image into the archive; its name there, or None if storage lost it."""
    name = IMAGES_DIR + download_name(gen.public_id, image.index, image.content_type)
    when = gen.created_at
    info = zipfile.ZipInfo(name, date_time=max(when.timetuple()[:6], (1980, 1, 1, 0, 0, 0)))
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = image.bytes or 0  # lets zipfile pick ZIP64 for an entry over 2 GiB
    try:
        src = default_storage.open(image.name, "rb")
    except FileNotFoundError:
        logger.warning("Export: %s is missing from storage; left out", image.name)
        return None
    with src, zf.open(info, "w") as dst:
        shutil.copyfileobj(src, dst, CHUNK)
    return name


def write_zip(export: Export, path: str, progress: Callable[[int], None]) -> tuple[int, int]:
    """Write the archive to `path`; returns (images written, generations listed)."""
    folder = os.path.dirname(path)
    json_path, csv_path = os.path.join(folder, "metadata.json"), os.path.join(folder, "m.csv")
    done = listed = 0
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf,
        open(json_path, "w", encoding="utf-8") as jf,
        open(csv_path, "w", encoding="utf-8", newline="") as cf,
    ):
        writer = csv.writer(cf)
        writer.writerow(CSV_FIELDS)
        jf.write("[")
        for gen, images in rows(export):
            names = []
            for image in images:
                name = _copy_image(zf, gen, image)
                if name is None:
                    continue
                names.append(name)
                done += 1
                if done % PROGRESS_EVERY == 0:
                    progress(done)
            meta = metadata(gen, names)
            jf.write(("\n" if not listed else ",\n") + json.dumps(meta, ensure_ascii=False))
            writer.writerow(csv_row(meta))
            listed += 1
        jf.write("\n]\n")
        jf.close()
        cf.close()
        zf.write(json_path, "metadata.json", compress_type=zipfile.ZIP_DEFLATED)
        zf.write(csv_path, "metadata.csv", compress_type=zipfile.ZIP_DEFLATED)
    return done, listed


def build(export: Export) -> tuple[str, int, int, int]:
    """Write the export's archive into storage. Returns (object name, bytes, images,
    generations). Raises ExportStopped if the row stopped running meanwhile."""

    def progress(done: int) -> None:
        if not export.record_progress(done):
            raise ExportStopped(export.public_id)

    with tempfile.TemporaryDirectory(prefix="easel-export-") as tmp:
        path = os.path.join(tmp, "export.zip")
        done, listed = write_zip(export, path, progress)
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            name = default_storage.save(export.storage_name, File(handle, name="export.zip"))
    return name, size, done, listed
