"""Admin for share links (issue #18): staff see every link and revoke it (the same path as the
owner's Revoke button, generator.sharing.revoke_link)."""

from __future__ import annotations

from django.contrib import admin, messages

from generator import sharing
from generator.models import ShareLink


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return ShareLink.State.choices

    def queryset(self, request, queryset):
        live = ShareLink.objects.live().values("pk")
        if self.value() == ShareLink.State.LIVE:
            return queryset.filter(pk__in=live)
        if self.value() == ShareLink.State.REVOKED:
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == ShareLink.State.EXPIRED:
            return queryset.filter(revoked_at__isnull=True).exclude(pk__in=live)
        return queryset


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    list_display = (
        "short_token",
        "generation",
        "owner",
        "state",
        "created_at",
        "expires_at",
        "show_prompt",
        "allow_indexing",
        "view_count",
        "last_viewed_at",
    )
    list_filter = (StateFilter, "show_prompt", "allow_indexing")
    search_fields = ("generation__public_id", "generation__user__email")
    list_select_related = ("generation__user",)
    readonly_fields = (
        "generation",
        "short_token",
        "created_at",
        "expires_at",
        "revoked_at",
        "show_prompt",
        "allow_indexing",
        "view_count",
        "last_viewed_at",
    )
    fields = readonly_fields
    actions = ("revoke",)

    @admin.display(description="token")
    def short_token(self, obj: ShareLink) -> str:
        return f"{obj.token[:6]}…"  # enough to tell links apart; the link itself stays the owner's

    @admin.display(description="owner", ordering="generation__user__email")
    def owner(self, obj: ShareLink) -> str:
        return obj.generation.user.email

    @admin.display(description="state")
    def state(self, obj: ShareLink) -> str:
        return obj.state_label

    @admin.action(description="Revoke selected share links", permissions=["revoke"])
    def revoke(self, request, queryset):
        done = sum(sharing.revoke_link(link) for link in queryset)
        self.message_user(request, f"{done} link(s) revoked.", messages.SUCCESS)

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("generator.change_sharelink")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # nothing on a link is edited; it is revoked (the action above)
