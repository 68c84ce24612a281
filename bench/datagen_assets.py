"""bench/datagen.py, what the data set points at: the bench AI models (a real install's mix,
plus the two the pipeline steps of bench/run.py use) and a handful of real image objects,
rendered once by the local renderer and stored in the configured storage."""

from __future__ import annotations

import hashlib

N_OBJECTS = 8

# (slug, name, provider, remote_id, params) — models a real install could have.
BENCH_MODELS = [
    ("bench-flux", "Bench FLUX", "replicate", "black-forest-labs/flux-schnell", {}),
    ("bench-dalle", "Bench DALL·E", "openai", "dall-e-3", {}),
    ("bench-sdxl", "Bench SDXL", "meteron", "sdxl", {}),
    ("bench-scenario", "Bench Scenario", "scenario", "model_abc", {}),
    # Used by the pipeline steps of bench/run.py (answer at once / a 10-s async job).
    ("bench-instant", "Bench instant 64px", "local", "bench-instant", {"delay": 0}),
    ("bench-async", "Bench async 10 s", "local", "bench-async", {"delay": 10}),
]
WORDS = (
    "a red fox in the snow, watercolor; an astronaut riding a horse; a lighthouse at dusk; "
    "a bowl of ramen, studio light; a cyberpunk street in the rain; a cat wearing a crown; "
    "an isometric city block; a misty forest with deer; a portrait in the style of Vermeer"
).split("; ")


def ensure_models() -> dict[str, int]:
    from generator.models import AIModel

    ids = {}
    for position, (slug, name, provider, remote_id, params) in enumerate(BENCH_MODELS):
        options = {
            "sizes": ["64x64", "512x512"],
            "max_images": 4,
            "seed": True,
            "defaults": {"size": "64x64" if provider == "local" else "512x512"},
        }
        model, _ = AIModel.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "provider": provider,
                "remote_id": remote_id,
                "params": params,
                "options": options,
                "position": 500 + position,
                "timeout_seconds": 600,
            },
        )
        ids[slug] = model.pk
    return ids


def store_objects(seed: int) -> list[dict]:
    """Render a few real images once and store them (original + WebP thumbnail)."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from generator.imaging import make_thumbnail
    from generator.providers.local import render

    objects = []
    for i in range(N_OBJECTS):
        data = render(WORDS[i % len(WORDS)], seed + i, (512, 512))
        thumb = make_thumbnail(data)
        base = f"generations/bench/object-{seed}-{i}"
        name = f"{base}.png"
        thumb_name = f"{base}-thumb.webp"
        if not default_storage.exists(name):
            name = default_storage.save(name, ContentFile(data))
        if not default_storage.exists(thumb_name):
            thumb_name = default_storage.save(thumb_name, ContentFile(thumb))
        objects.append(
            {
                "file": name,
                "thumbnail": thumb_name,
                "bytes": len(data),
                "thumbnail_bytes": len(thumb),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    return objects
