from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from generator.models import AIModel, Generation, OutputImage
from generator.providers import provider_choices


class AIModelForm(forms.ModelForm):
    provider = forms.ChoiceField(choices=())

    class Meta:
        model = AIModel
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = provider_choices()


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    form = AIModelForm
    list_display = ("name", "slug", "provider", "remote_id", "enabled", "position")
    list_editable = ("enabled", "position")
    list_filter = ("enabled", "provider")
    search_fields = ("name", "slug", "remote_id")
    prepopulated_fields = {"slug": ("name",)}
    actions = ("enable", "disable")

    @admin.action(description="Enable selected models")
    def enable(self, request, queryset):
        queryset.update(enabled=True)

    @admin.action(description="Disable selected models")
    def disable(self, request, queryset):
        queryset.update(enabled=False)


def thumbnail_tag(image: OutputImage, size: int = 96) -> str:
    url = reverse("gallery:image_file", args=[image.generation.public_id, image.index, "thumb"])
    return format_html(
        '<img src="{}" alt="" style="width:{}px;height:{}px;object-fit:cover;border-radius:4px">',
        url,
        size,
        size,
    )


class OutputImageInline(admin.TabularInline):
    model = OutputImage
    extra = 0
    can_delete = False
    fields = ("preview", "index", "width", "height", "bytes", "content_type", "file", "provider_url")
    readonly_fields = fields

    @admin.display(description="Image")
    def preview(self, obj):
        return thumbnail_tag(obj) if obj.pk else ""

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = (
        "public_id",
        "first_image",
        "user",
        "model",
        "status",
        "short_prompt",
        "created_at",
        "duration",
    )
    list_filter = ("status", "model", "provider", "created_at")
    search_fields = ("prompt", "public_id", "user__email", "provider_job_id")
    list_select_related = ("user", "model")
    raw_id_fields = ("user", "parent")
    date_hierarchy = "created_at"
    inlines = (OutputImageInline,)
    readonly_fields = (
        "public_id",
        "provider",
        "provider_job_id",
        "provider_state",
        "tag_sent",
        "attempts",
        "dispatches",
        "progress",
        "created_at",
        "dispatched_at",
        "started_at",
        "submitted_at",
        "finished_at",
        "lease_until",
        "deadline_at",
        "updated_at",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("images")

    @admin.display(description="Prompt")
    def short_prompt(self, obj):
        return obj.prompt[:60] + ("…" if len(obj.prompt) > 60 else "")

    @admin.display(description="Image")
    def first_image(self, obj):
        images = list(obj.images.all())
        return thumbnail_tag(images[0], 48) if images else "—"


@admin.register(OutputImage)
class OutputImageAdmin(admin.ModelAdmin):
    list_display = ("__str__", "preview", "width", "height", "bytes", "content_type", "created_at")
    list_filter = ("content_type",)
    search_fields = ("generation__public_id", "generation__prompt")
    list_select_related = ("generation",)
    raw_id_fields = ("generation",)

    @admin.display(description="Image")
    def preview(self, obj):
        return thumbnail_tag(obj, 48)
