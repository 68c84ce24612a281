"""Seed the offline local models so a new install can generate at once."""

from django.db import migrations

LOCAL_MODELS = [
    {
        "slug": "local-sketch",
        "name": "Local Sketch",
        "description": "Offline renderer: abstract shapes from your prompt and seed. No AI service.",
        "position": 10,
        "options": {
            "sizes": ["512x512", "768x512", "512x768", "256x256", "1024x1024"],
            "max_images": 4,
            "negative_prompt": True,
            "seed": True,
            "prompt_max_length": 1000,
            "defaults": {"size": "512x512"},
        },
    },
    {
        "slug": "local-wide",
        "name": "Local Wide",
        "description": "Offline renderer with aspect ratios instead of sizes.",
        "position": 20,
        "options": {
            "aspect_ratios": ["1:1", "16:9", "9:16", "4:3", "3:4"],
            "max_images": 4,
            "negative_prompt": False,
            "seed": True,
            "prompt_max_length": 500,
            "defaults": {"aspect_ratio": "16:9"},
        },
    },
]


def seed(apps, schema_editor):
    AIModel = apps.get_model("generator", "AIModel")
    for data in LOCAL_MODELS:
        AIModel.objects.get_or_create(
            slug=data["slug"], defaults={**data, "provider": "local", "remote_id": data["slug"]}
        )


def unseed(apps, schema_editor):
    AIModel = apps.get_model("generator", "AIModel")
    AIModel.objects.filter(slug__in=[m["slug"] for m in LOCAL_MODELS], generations=None).delete()


class Migration(migrations.Migration):
    dependencies = [("generator", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
