"""Moderation before spend: the staff-managed block list (BlockedTerm) and the review list of
prompts it refused (FlaggedPrompt). The check itself is generator.moderation."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class BlockedTermQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True)


class BlockedTerm(models.Model):
    """A word/phrase or a regular expression a prompt must not contain (case-insensitive)."""

    pattern = models.CharField(max_length=300)
    is_regex = models.BooleanField(
        default=False, help_text="Treat the pattern as a Python regular expression."
    )
    whole_word = models.BooleanField(
        default=True, help_text="Match only at word boundaries (e.g. 'cat' does not hit 'scatter')."
    )
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = BlockedTermQuerySet.as_manager()

    class Meta:
        ordering = ("pattern",)

    def __str__(self) -> str:
        return f"/{self.pattern}/" if self.is_regex else self.pattern

    def regex(self) -> re.Pattern:
        body = self.pattern if self.is_regex else re.escape(self.pattern)
        if self.whole_word:
            body = rf"\b(?:{body})\b"
        return re.compile(body, re.IGNORECASE)

    def clean(self):
        try:
            self.regex()
        except re.error as exc:
            raise ValidationError({"pattern": f"Not a valid regular expression: {exc}"}) from exc


class FlaggedPrompt(models.Model):
    """A prompt refused before anything was charged or sent, kept for staff review."""

    class Source(models.TextChoices):
        BLOCK_LIST = "block_list", "Block list"
        MODERATION = "moderation", "Moderation endpoint"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    model = models.ForeignKey(
        "generator.AIModel", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    prompt = models.TextField()
    source = models.CharField(max_length=16, choices=Source.choices)
    matched = models.CharField(max_length=300, help_text="The rule or categories that matched.")
    reviewed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.user} · {self.matched}"
