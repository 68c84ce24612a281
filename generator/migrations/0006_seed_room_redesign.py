"""Seed "Room redesign": RoomFix's flow (a photo of a room, a theme, a room type) on the offline
renderer, so a fresh install shows the whole flow before any provider is configured."""

from django.db import migrations

# RoomFix's choices (meteron-ai/roomfix, a fork of Nutlope/roomGPT: utils/dropdownTypes.ts).
THEMES = ["Modern", "Vintage", "Minimalist", "Professional", "Tropical"]
ROOMS = ["Living Room", "Dining Room", "Bedroom", "Bathroom", "Office", "Gaming Room"]

ROOM_REDESIGN = {
    "slug": "room-redesign",
    "name": "Room redesign",
    "description": "Upload a photo of a room, pick a theme and a room type, get it redesigned "
    "(offline renderer).",
    "provider": "local",
    "remote_id": "room-redesign",
    "position": 30,
    "options": {
        "sizes": ["512x512", "768x512", "512x768"],
        "max_images": 2,
        "negative_prompt": False,
        "seed": True,
        "input_image": True,
        "prompt_max_length": 300,
        "defaults": {"size": "768x512", "num_images": 1},
    },
    "prompt_template": "a {theme} {room}",
    "template_choices": {"theme": THEMES, "room": ROOMS},
}


def seed(apps, schema_editor):
    AIModel = apps.get_model("generator", "AIModel")
    AIModel.objects.get_or_create(slug=ROOM_REDESIGN["slug"], defaults=ROOM_REDESIGN)


def unseed(apps, schema_editor):
    AIModel = apps.get_model("generator", "AIModel")
    AIModel.objects.filter(slug=ROOM_REDESIGN["slug"], generations=None).delete()


class Migration(migrations.Migration):
    dependencies = [("generator", "0005_images_ordered_by_column")]
    operations = [migrations.RunPython(seed, unseed)]
