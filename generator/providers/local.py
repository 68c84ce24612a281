"""The built-in local provider: the offline renderer.

It needs no network. It draws a real image with Pillow, deterministic from the prompt and seed,
at the requested size. With a delay (EASEL_LOCAL_PROVIDER_DELAY, or the model's
`params.delay`) it behaves like an async API — a job handle now, images on a later check, with
progress in between — so the whole pipeline runs offline exactly as it does for hosted APIs.
"""

from __future__ import annotations

import functools
import hashlib
import io
import random
import textwrap
import time

from django.conf import settings
from PIL import Image, ImageDraw, ImageFont, ImageOps

from generator.providers.base import Done, ImageOutput, Pending, Provider, ProviderError
from generator.providers.base import parse_size as base_parse_size

DEFAULT_SIZE = (512, 512)
MAX_SIDE = 4096


def parse_size(value: str | None) -> tuple[int, int]:
    if not value:
        return DEFAULT_SIZE
    width, height = base_parse_size(value)
    if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE):
        raise ProviderError(f"Size {value!r} is outside 16–{MAX_SIDE} pixels.")
    return width, height


def size_for(options: dict) -> tuple[int, int]:
    if options.get("size"):
        return parse_size(options["size"])
    ratio = options.get("aspect_ratio")
    if ratio:
        w, h = (int(p) for p in ratio.split(":"))
        base = 512
        return (
            (base, round(base * h / w / 8) * 8) if w >= h else (round(base * w / h / 8) * 8, base)
        )
    return DEFAULT_SIZE


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    # Loading the font costs more than drawing a small image; a handful of sizes recur.
    return ImageFont.load_default(size=size)


@functools.lru_cache(maxsize=32)
def _gradient(size: tuple[int, int]) -> Image.Image:
    # Read-only once made (composite's mask); a quarter of a small image's drawing time.
    return Image.linear_gradient("L").resize(size)


def render(prompt: str, seed: int, size: tuple[int, int], negative_prompt: str = "") -> bytes:
    """A PNG that depends only on (prompt, negative prompt, seed, size)."""
    digest = hashlib.sha256(f"{prompt}\x00{negative_prompt}\x00{seed}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    width, height = size

    def colour(alpha: int | None = None):
        rgb = tuple(rng.randrange(30, 230) for _ in range(3))
        return rgb if alpha is None else (*rgb, alpha)

    top, bottom = colour(), colour()
    mask = _gradient(size)
    image = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.randrange(6, 14)):
        x0, y0 = rng.randrange(-width // 4, width), rng.randrange(-height // 4, height)
        w, h = (
            rng.randrange(width // 8, width // 2 + 1),
            rng.randrange(height // 8, height // 2 + 1),
        )
        box = (x0, y0, x0 + w, y0 + h)
        shape = rng.choice(("ellipse", "rectangle", "triangle"))
        fill = colour(rng.randrange(70, 170))
        if shape == "ellipse":
            draw.ellipse(box, fill=fill)
        elif shape == "rectangle":
            draw.rounded_rectangle(box, radius=min(w, h) // 6, fill=fill)
        else:
            draw.polygon([(x0, y0 + h), (x0 + w // 2, y0), (x0 + w, y0 + h)], fill=fill)
    image = Image.alpha_composite(image.convert("RGBA"), layer)

    # The prompt, so a person can tell images apart at a glance.
    font_size = max(10, min(width, height) // 18)
    font = _font(font_size)
    chars = max(8, int(width / (font_size * 0.6)))
    lines = textwrap.wrap(prompt, chars)[:3]
    if lines:
        band = font_size * (len(lines) + 1)
        overlay = Image.new("RGBA", size, (0, 0, 0, 0))
        odraw = ImageDraw.Draw(overlay)
        odraw.rectangle((0, height - band, width, height), fill=(0, 0, 0, 120))
        for i, line in enumerate(lines):
            odraw.text(
                (font_size // 2, height - band + font_size // 2 + i * font_size),
                line,
                font=font,
                fill=(255, 255, 255, 230),
            )
        image = Image.alpha_composite(image, overlay)

    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", optimize=False)
    return out.getvalue()


def restyle(photo: bytes, prompt: str, seed: int, size: tuple[int, int]) -> bytes:
    """A new image from an input photo: the photo's shapes recoloured in a palette drawn from
    (prompt, seed) and blended with the renderer's pattern. Deterministic, like `render`."""
    digest = hashlib.sha256(f"{prompt}\x00{seed}\x00restyle".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    with Image.open(io.BytesIO(photo)) as source:
        base = ImageOps.fit(ImageOps.exif_transpose(source).convert("RGB"), size)
    dark = tuple(rng.randrange(10, 110) for _ in range(3))
    mid = tuple(rng.randrange(60, 200) for _ in range(3))
    light = tuple(rng.randrange(170, 250) for _ in range(3))
    toned = ImageOps.colorize(ImageOps.autocontrast(base.convert("L")), dark, light, mid=mid)
    pattern = Image.open(io.BytesIO(render(prompt, seed, size))).convert("RGB")
    mixed = Image.blend(Image.blend(base, toned, 0.65), pattern, 0.2)
    out = io.BytesIO()
    mixed.save(out, format="PNG", optimize=False)
    return out.getvalue()


class LocalProvider(Provider):
    name = "local"
    label = "Local renderer (offline)"
    offline = True
    supports_cancel = True

    def photo_problem(self, model) -> str:
        return ""  # restyle() works from the photo itself

    def mode(self, model) -> str:
        return "Offline: rendered by the worker on this server; no AI service is called."

    def delay(self, gen) -> float:
        return float(gen.model.params.get("delay", settings.EASEL_LOCAL_PROVIDER_DELAY))

    def render_all(self, gen) -> Done:
        size = size_for(gen.options)
        seed = gen.seed if gen.seed is not None else 0
        if gen.input_image:
            with gen.input_image.open("rb") as handle:
                photo = handle.read()
            return Done(
                images=[
                    ImageOutput(
                        data=restyle(photo, gen.prompt, seed + i, size), content_type="image/png"
                    )
                    for i in range(gen.num_images)
                ]
            )
        return Done(
            images=[
                ImageOutput(
                    data=render(gen.prompt, seed + i, size, gen.negative_prompt),
                    content_type="image/png",
                )
                for i in range(gen.num_images)
            ]
        )

    def submit(self, gen) -> Done | Pending:
        size_for(gen.options)  # refuse a bad size now, not at the end
        delay = self.delay(gen)
        if delay <= 0:
            return self.render_all(gen)
        now = time.time()
        return Pending(
            job_id=f"local-{gen.public_id}",
            progress=0.0,
            state={"started": now, "ready_at": now + delay},
            # The job's end is known: one check when it is due (the task caps the wait at
            # MAX_POLL_INTERVAL, so a long job still reports progress on the way).
            poll_after=delay,
        )

    def check(self, gen) -> Done | Pending:
        state = gen.provider_state or {}
        ready_at, started = state.get("ready_at", 0), state.get("started", 0)
        now = time.time()
        if now >= ready_at:
            return self.render_all(gen)
        total = max(ready_at - started, 1e-6)
        elapsed = now - started
        return Pending(
            job_id=gen.provider_job_id,
            progress=min(0.99, elapsed / total),
            state=state,
            poll_after=ready_at - now,
        )
