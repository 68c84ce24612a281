"""`manage.py addmodel SLUG --provider NAME --remote-id ID [--name TEXT] [--option KEY=VALUE ...]`

Creates or updates one AIModel so ops can script a deployment; running it twice changes nothing
the second time. Option values are parsed as JSON when they can be (`max_images=2`,
`sizes=["512x512"]`, `negative_prompt=true`) and kept as text otherwise. `--param` does the same
for the provider-specific params (e.g. `--param async=false`). `--template "a {theme} {room}"`
sets the prompt template and each `--choice NAME=A,B,C` (or a JSON list) the select box of one
{name}, as in the admin (RoomFix-style models).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify

from generator.models import AIModel
from generator.models.validation import model_json_errors
from generator.providers import get_provider, provider_names


def parse_pairs(pairs: list[str], flag: str) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CommandError(f"{flag} {pair!r} is not KEY=VALUE.")
        try:
            parsed[key] = json.loads(raw)
        except ValueError:
            parsed[key] = raw
    return parsed


class Command(BaseCommand):
    help = "Create or update an AI model (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--provider", required=True)
        parser.add_argument("--remote-id", required=True, dest="remote_id")
        parser.add_argument("--name", default="")
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--template", default=None, help='e.g. "a {theme} {room}"')
        parser.add_argument(
            "--choice", action="append", default=[], metavar="NAME=A,B,C", help="a {name}'s values"
        )
        parser.add_argument("--disabled", action="store_true", help="Create it switched off.")

    def handle(
        self,
        *args,
        slug,
        provider,
        remote_id,
        name,
        option,
        param,
        template,
        choice,
        disabled,
        **kw,
    ):
        if slugify(slug) != slug:
            raise CommandError(f"{slug!r} is not a valid slug (lowercase letters, digits, -).")
        names = provider_names()
        if provider not in names:
            raise CommandError(f"Unknown provider {provider!r}. Known: {', '.join(names)}.")
        options = parse_pairs(option, "--option")
        params = parse_pairs(param, "--param")
        choices = {
            key: value if isinstance(value, list) else [v.strip() for v in str(value).split(",")]
            for key, value in parse_pairs(choice, "--choice").items()
        }
        with transaction.atomic():
            model = AIModel.objects.select_for_update().filter(slug=slug).first()
            created = model is None
            if created:
                model = AIModel(slug=slug, name=name or slug, enabled=not disabled)
            before = (
                model.provider,
                model.remote_id,
                model.name,
                dict(model.options or {}),
                dict(model.params or {}),
                model.prompt_template,
                dict(model.template_choices or {}),
            )
            model.provider = provider
            model.remote_id = remote_id
            if name:
                model.name = name
            model.options = {**(model.options or {}), **options}
            model.params = {**(model.params or {}), **params}
            if template is not None:
                model.prompt_template = template
            model.template_choices = {**(model.template_choices or {}), **choices}
            after = (
                model.provider,
                model.remote_id,
                model.name,
                model.options,
                model.params,
                model.prompt_template,
                model.template_choices,
            )
            if created or before != after:
                errors = [m for ms in model_json_errors(model).values() for m in ms]
                errors += get_provider(provider).model_errors(model)
                if errors:
                    raise CommandError(" ".join(errors))
                model.full_clean()
                model.save()
        verb = "Created" if created else ("Updated" if before != after else "Unchanged")
        self.stdout.write(f"{verb} model {slug} ({provider}: {remote_id}).")
