"""`manage.py meteron_sync [--user EMAIL_OR_PUBLIC_ID] [--model SLUG] [--status STATUS]`

Pages through Meteron's listing (`GET /api/images/generations?user=&model=&status=&pageSize=200
&pageToken=` until `nextPageToken` is empty) for every enabled-or-not Meteron model (or one) and
for each Meteron generation:
- a local generation with that provider job id that is still queued/running (its reply was
  lost) is finished from Meteron's record: images stored, or failed with Meteron's reason;
- a completed generation Easel has never seen is imported as a completed Generation of the
  user whose tag (public id or e-mail) it carries, images copied into Easel's storage (only the
  model's `params.output_images` entries, when set);
- anything already known (same provider + provider job id) is left alone, so a re-run
  imports nothing twice.

Without --user, an item can only be attributed by a `user` field, which only the 2023 SDK's
listing carried (the documented item is id, modelId, serverId, status, outputImages: seed 001,
PROTOCOLS Corrections). What could not be attributed is reported with counts and ids, and how to
import it (--user, which filters Meteron's listing by X-User), never skipped in silence.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from generator.errors import GenerationError, ProviderError
from generator.models import AIModel, Generation
from generator.outputs import store_and_complete
from generator.providers.base import Done, Failed
from generator.providers.meteron import MeteronProvider, id_time, item_images, output_indexes

IMPORTED_PROMPT = "(imported from Meteron)"
SHOWN_IDS = 10


def prompt_of(item: dict[str, Any]) -> str:
    """The prompt from the stored request body (base64 JSON), top level or under `input`."""
    raw = item.get("requestBody")
    body: Any = None
    if isinstance(raw, str) and raw:
        try:
            body = json.loads(base64.b64decode(raw))
        except ValueError:
            body = None
    elif isinstance(raw, dict):
        body = raw
    for node in (body, (body or {}).get("input") if isinstance(body, dict) else None):
        if isinstance(node, dict) and isinstance(node.get("prompt"), str) and node["prompt"]:
            return node["prompt"]
    return item.get("prompt") or IMPORTED_PROMPT


def created_at_of(item: dict[str, Any]):
    seconds = id_time(str(item.get("id") or ""))  # Meteron's ids are ULIDs (see id_time)
    if seconds is not None:
        return datetime.fromtimestamp(seconds, tz=UTC)
    value = item.get("createdAt")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else timezone.make_aware(parsed)
        except ValueError:
            pass
    return timezone.now()


class Command(BaseCommand):
    help = "Recover lost Meteron replies and import users' earlier Meteron generations."

    def add_arguments(self, parser):
        parser.add_argument("--user", default="", help="E-mail or public id (u_…) of one user.")
        parser.add_argument("--model", default="", help="Slug of one Meteron model.")
        parser.add_argument("--status", default="", help="Only Meteron generations in this status.")

    def handle(self, *args, user, model, status, **kw):
        User = get_user_model()
        only_user = None
        if user:
            only_user = User.objects.filter(Q(email__iexact=user) | Q(public_id=user)).first()
            if only_user is None:
                raise CommandError(f"No user with e-mail or public id {user!r}.")
        models = AIModel.objects.filter(provider="meteron")
        if model:
            models = models.filter(slug=model)
            if not models.exists():
                raise CommandError(f"No Meteron model with slug {model!r}.")
        provider = MeteronProvider()
        counts: Counter[str] = Counter()
        self.untagged: list[str] = []  # completed items with no user field
        self.unmatched: dict[str, list[str]] = {}  # tag → ids of items whose tag is nobody here
        for ai_model in models.order_by("slug"):
            tag = ai_model.tag_for(only_user) if only_user else ""
            self.stdout.write(
                f"Listing {ai_model.slug} ({ai_model.remote_id})"
                + (f" for {tag}" if tag else "")
                + " …"
            )
            try:
                for page in provider.list_generations(
                    user=tag, model=ai_model.remote_id, status=status
                ):
                    counts["pages"] += 1
                    for item in page:
                        counts["seen"] += 1
                        counts[self.sync_one(provider, ai_model, item, only_user)] += 1
                    self.stdout.write(f"  page {counts['pages']}: {counts['seen']} seen so far")
            except ProviderError as exc:
                raise CommandError(f"Meteron listing failed: {exc.message}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: {counts['seen']} Meteron generations in {counts['pages']} pages; "
                f"{counts['recovered']} recovered, {counts['recovered_failed']} recovered as failed, "
                f"{counts['imported']} imported, {counts['known']} already known, "
                f"{counts['not_ready']} not finished, {counts['no_user']} without a matching user, "
                f"{counts['errors']} errors."
            )
        )
        self.report_unattributed()

    def report_unattributed(self) -> None:
        def ids(items: list[str]) -> str:
            more = len(items) - SHOWN_IDS
            return ", ".join(items[:SHOWN_IDS]) + (f" and {more} more" if more > 0 else "")

        if self.untagged:
            self.stdout.write(
                self.style.WARNING(
                    f"Not imported: {len(self.untagged)} completed Meteron generation(s) say "
                    f"nothing about their user (Meteron's listing does not name the user), so "
                    f"Easel cannot tell whose they are: {ids(self.untagged)}. Run again with "
                    "--user EMAIL_OR_PUBLIC_ID to import one user's history (Meteron filters "
                    "its listing by the X-User tag)."
                )
            )
        for tag, items in sorted(self.unmatched.items()):
            self.stdout.write(
                self.style.WARNING(
                    f"Not imported: {len(items)} completed Meteron generation(s) tagged "
                    f"{tag!r}, which is no Easel user's e-mail or public id: {ids(items)}."
                )
            )

    def sync_one(self, provider, ai_model, item, only_user) -> str:
        job_id = str(item.get("id") or "")
        if not job_id:
            return "errors"
        local = Generation.objects.filter(provider="meteron", provider_job_id=job_id).first()
        if local is not None:
            return self.recover(provider, local, item)
        if str(item.get("status") or "").lower() != "completed":
            return "not_ready"
        owner = only_user or self.user_for(ai_model, item.get("user"))
        if owner is None:
            tag = str(item.get("user") or "")
            if tag:
                self.unmatched.setdefault(tag, []).append(job_id)
            else:
                self.untagged.append(job_id)
            return "no_user"
        return self.import_one(provider, ai_model, owner, item)

    def user_for(self, ai_model, tag):
        if not tag:
            return None
        User = get_user_model()
        field = "email__iexact" if ai_model.tag_with == AIModel.TagWith.EMAIL else "public_id"
        return (
            User.objects.filter(**{field: tag}).first()
            or User.objects.filter(Q(public_id=tag) | Q(email__iexact=tag)).first()
        )

    def recover(self, provider, gen: Generation, item) -> str:
        if gen.is_final:
            return "known"
        result = provider.interpret(item, gen.model)
        if isinstance(result, Done):
            try:
                completed = store_and_complete(gen, result.images, provider)
            except GenerationError as exc:
                self.stderr.write(f"  {gen.public_id}: {exc.message}")
                return "errors"
            if completed:
                self.stdout.write(f"  recovered {gen.public_id} from {item['id']}")
                return "recovered"
            return "known"
        if isinstance(result, Failed):
            return "recovered_failed" if gen.fail(result.reason) else "known"
        return "not_ready"

    def import_one(self, provider, ai_model, owner, item) -> str:
        images = item_images(item, output_indexes(ai_model))
        if not images:
            return "errors"
        now = timezone.now()
        gen = Generation.objects.create(
            user=owner,
            model=ai_model,
            provider="meteron",
            prompt=prompt_of(item),
            status=Generation.Status.RUNNING,
            provider_job_id=str(item["id"]),
            tag_sent=str(item.get("user") or ai_model.tag_for(owner)),
            num_images=len(images),
            created_at=created_at_of(item),
            started_at=now,
            submitted_at=now,
        )
        try:
            store_and_complete(gen, images, provider)
        except GenerationError as exc:
            # All or nothing: no half-imported row is left to look like a real generation.
            gen.delete()
            self.stderr.write(f"  {item['id']}: not imported: {exc.message}")
            return "errors"
        return "imported"
