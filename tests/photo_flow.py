"""Test support for the RoomFix flow (issue 15): a phone photo in, through the web form.

Every provider's photo test uses the same steps, so each proves the same thing: what reached the
provider is Easel's stored copy of the upload (turned upright, no EXIF, no GPS), not the raw
upload and not nothing.

    raw = room_jpeg()                              # 64×32, EXIF orientation 6 + GPS + camera
    gen = submit_room_photo(client, model.slug, raw, prompt="…")
    assert_is_stored_copy(bytes_the_simulator_saw, gen)
"""

from __future__ import annotations

import io

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from generator.models import AIModel, Generation

ROOM_TEMPLATE = "a {theme} {room}"
ROOM_CHOICES = {"theme": ["Modern", "Vintage"], "room": ["Living Room", "Bedroom"]}


def room_jpeg(size=(64, 32), colour=(200, 30, 30)) -> bytes:
    """A JPEG as a phone takes it: sideways (orientation 6) with GPS and camera tags."""
    image = Image.new("RGB", size, colour)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° on display
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 1.0)}  # GPS
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def room_model(provider: str, remote_id: str, *, params=None, **options) -> AIModel:
    """A RoomFix-style model on `provider`: a photo, a theme and a room."""
    return AIModel.objects.create(
        slug=f"{provider}-room",
        name=f"{provider} room",
        provider=provider,
        remote_id=remote_id,
        options={"input_image": True, "seed": True, "max_images": 2, **options},
        params=params or {},
        prompt_template=ROOM_TEMPLATE,
        template_choices=ROOM_CHOICES,
    )


def submit_room_photo(client, slug: str, raw: bytes | None = None, **extra) -> Generation:
    """POST the home page's form as a browser does (the caller runs on-commit callbacks)."""
    data = {
        "model": slug,
        "tpl_theme": "Modern",
        "tpl_room": "Living Room",
        "num_images": 1,
        "input_image": SimpleUploadedFile("room.jpg", raw or room_jpeg(), "image/jpeg"),
        **extra,
    }
    response = client.post("/", data)
    assert response.status_code == 302, response.content[:2000]
    return Generation.objects.filter(model__slug=slug).latest("created_at")


def stored_photo(gen: Generation) -> bytes:
    with gen.input_image.open("rb") as handle:
        return handle.read()


def assert_is_stored_copy(received: bytes, gen: Generation) -> None:
    """`received` is byte for byte Easel's upright, EXIF-free copy of the upload."""
    assert received == stored_photo(gen), "the provider got something other than Easel's copy"
    image = Image.open(io.BytesIO(received))
    assert image.size[1] > image.size[0], "the photo was not turned upright"
    exif = image.getexif()
    assert not exif and not exif.get_ifd(0x8825), "EXIF or GPS data reached the provider"
