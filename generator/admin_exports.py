"""Admin for ZIP exports (issue #18): a read-only list, to see who exported what and why one
failed. Exports are made and changed only by their owner's page and the task."""

from __future__ import annotations

from django.contrib import admin

from generator.models import Export


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = (
        "public_id",
        "user",
        "status",
        "done",
        "total",
        "bytes",
        "created_at",
        "expires_at",
    )
    list_filter = ("status",)
    search_fields = ("public_id", "user__email")
    list_select_related = ("user",)
    readonly_fields = [f.name for f in Export._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
