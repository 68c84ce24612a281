"""Admin for moderation before spend: the block list and the review list of flagged prompts."""

from __future__ import annotations

from django.contrib import admin

from generator.models import BlockedTerm, FlaggedPrompt


@admin.register(BlockedTerm)
class BlockedTermAdmin(admin.ModelAdmin):
    list_display = ("pattern", "is_regex", "whole_word", "enabled", "note", "created_at")
    list_filter = ("enabled", "is_regex")
    list_editable = ("enabled",)
    search_fields = ("pattern", "note")


@admin.register(FlaggedPrompt)
class FlaggedPromptAdmin(admin.ModelAdmin):
    """The review list: what was refused, for whom, by which rule. Read-only but `reviewed`."""

    list_display = ("created_at", "user", "model", "source", "matched", "short_prompt", "reviewed")
    list_filter = ("reviewed", "source", "model")
    list_editable = ("reviewed",)
    search_fields = ("prompt", "matched", "user__email")
    readonly_fields = ("created_at", "user", "model", "prompt", "source", "matched")
    actions = ("mark_reviewed",)

    @admin.display(description="prompt")
    def short_prompt(self, obj):
        return obj.prompt if len(obj.prompt) <= 80 else obj.prompt[:79] + "…"

    @admin.action(description="Mark as reviewed")
    def mark_reviewed(self, request, queryset):
        queryset.update(reviewed=True)

    def has_add_permission(self, request):
        return False
