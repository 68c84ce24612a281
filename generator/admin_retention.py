"""Admin for retention (issue #18): the one global policy, and the generations' "images
expired" filter. A model's own retention is a field on its AI model page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse

from generator.models import RetentionPolicy


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    """One row; without it EASEL_RETENTION_DAYS applies (shown on the list)."""

    list_display = ("__str__", "keep_days", "updated_at")
    fields = ("keep_days", "environment_default")
    readonly_fields = ("environment_default",)

    @admin.display(description="EASEL_RETENTION_DAYS (used while no policy is saved)")
    def environment_default(self, obj=None) -> str:
        days = settings.EASEL_RETENTION_DAYS
        return f"{days} days" if days else "forever"

    def has_add_permission(self, request):
        return not RetentionPolicy.objects.exists() and super().has_add_permission(request)

    def changelist_view(self, request, extra_context=None):
        # One row: the admin index's link opens its form (the add form until one is saved).
        row = RetentionPolicy.objects.first()
        if row is None:
            return redirect(reverse("admin:generator_retentionpolicy_add"))
        return redirect(reverse("admin:generator_retentionpolicy_change", args=[row.pk]))


class ImagesExpiredFilter(admin.SimpleListFilter):
    title = "images expired"
    parameter_name = "images_expired"

    def lookups(self, request, model_admin):
        return (("yes", "Expired"), ("no", "Kept"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(images_expired_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(images_expired_at__isnull=True)
        return queryset
