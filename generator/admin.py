from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import path, reverse
from django.utils.html import format_html

from generator import actions, admin_views
from generator.admin_retention import ImagesExpiredFilter
from generator.errors import ProviderError
from generator.models import AIModel, Generation, OutputImage, UsageEntry, UserLimit
from generator.models.validation import model_json_errors
from generator.providers import get_provider, provider_choices


class AIModelForm(forms.ModelForm):
    provider = forms.ChoiceField(choices=())

    class Meta:
        model = AIModel
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = provider_choices()

    def clean(self):
        data = super().clean()
        # The JSON schema is AIModel.clean's (run by the form after this); the provider's own
        # rules only make sense on JSON that follows it.
        candidate = self.instance_with(data)
        if not self.errors and data.get("provider") and not model_json_errors(candidate):
            for message in get_provider(data["provider"]).model_errors(candidate):
                self.add_error(None, message)
        return data

    def instance_with(self, data) -> AIModel:
        """The model as it would be saved, for the schema and the provider's hook."""
        model = AIModel(**{f.name: getattr(self.instance, f.name) for f in AIModel._meta.fields})
        for key in ("provider", "remote_id", "options", "params", "template_choices"):
            if key in data:
                setattr(model, key, data[key])
        return model


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    form = AIModelForm
    list_display = (
        "name",
        "slug",
        "provider",
        "remote_id",
        "enabled",
        "position",
        "retention_days",
        "runs",
    )
    list_editable = ("enabled", "position")
    readonly_fields = ("runs",)
    list_filter = ("enabled", "provider")
    search_fields = ("name", "slug", "remote_id")
    prepopulated_fields = {"slug": ("name",)}
    actions = ("enable", "disable", "check_connection")

    @admin.display(description="How it runs")
    def runs(self, model: AIModel) -> str:
        """The provider's mode for this model (sync or polled, webhooks or not), as saved."""
        try:
            provider = get_provider(model.provider)
        except KeyError:
            return "No such provider on this server."
        line = provider.mode(model) if model.pk else ""
        problem = provider.photo_problem(model) if model.accepts_input_image else ""
        return f"{line} Photo: {problem}" if problem else line

    @admin.action(description="Enable selected models")
    def enable(self, request, queryset):
        queryset.update(enabled=True)

    @admin.action(description="Check connection to the selected models' providers")
    def check_connection(self, request, queryset):
        """One check per provider. Only the provider's own readable line is shown: never the
        settings, so no key or secret can reach the page."""
        for name in sorted(set(queryset.values_list("provider", flat=True))):
            try:
                provider = get_provider(name)
                line = provider.check_connection()
            except KeyError:
                self.message_user(
                    request, f"{name}: no such provider on this server.", messages.ERROR
                )
            except ProviderError as exc:
                self.message_user(request, f"{provider.label}: {exc.message}", messages.ERROR)
            except Exception as exc:  # a provider bug must not become a 500 in the admin
                self.message_user(
                    request, f"{name}: check failed ({type(exc).__name__}).", messages.ERROR
                )
            else:
                self.message_user(request, f"{provider.label}: {line}", messages.SUCCESS)

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
    fields = (
        "preview",
        "index",
        "width",
        "height",
        "bytes",
        "content_type",
        "file",
        "provider_url",
    )
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
        "provider",
        "provider_job_id",
        "tag_sent",
        "timings",
    )
    list_filter = (
        "status",
        "model",
        "provider",
        "via_api",
        ImagesExpiredFilter,
        ("user", admin.RelatedOnlyFieldListFilter),
        "created_at",
    )
    search_fields = ("prompt", "public_id", "user__email", "provider_job_id")
    list_select_related = ("user", "model")
    raw_id_fields = ("user", "parent")
    date_hierarchy = "created_at"
    inlines = (OutputImageInline,)
    actions = ("delete_with_files", "retry_selected", "cancel_selected")
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
        "images_expired_at",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("images")

    def get_urls(self):
        site = self.admin_site
        return [
            path(
                "failures/",
                site.admin_view(lambda request: admin_views.failures(request, site)),
                name="generator_generation_failures",
            ),
            path(
                "dashboard/",
                site.admin_view(lambda request: admin_views.dashboard(request, site)),
                name="generator_generation_dashboard",
            ),
            *super().get_urls(),
        ]

    @admin.action(description="Retry selected generations (a new attempt, counted again)")
    def retry_selected(self, request, queryset):
        made, refused = [], []
        for gen in queryset.select_related("model", "user"):
            try:
                made.append(actions.rerun(gen, new_seed=False, by_staff=True)[0])
            except actions.RerunRefused as exc:
                refused.append(f"{gen.public_id}: {exc}")
        if made:
            self.message_user(
                request,
                f"Retried {len(made)} generation(s): " + ", ".join(g.public_id for g in made),
                messages.SUCCESS,
            )
        if refused:
            self.message_user(
                request, f"Not retried ({len(refused)}): " + "; ".join(refused), messages.WARNING
            )

    @admin.action(description="Cancel selected generations (queued or running)")
    def cancel_selected(self, request, queryset):
        canceled = sum(actions.cancel(gen, "Canceled by staff.") for gen in queryset)
        skipped = queryset.count() - canceled
        note = f" ({skipped} already finished, left as they were)" if skipped else ""
        self.message_user(request, f"Canceled {canceled} generation(s){note}.", messages.SUCCESS)

    @admin.display(description="Timings")
    def timings(self, obj):
        def secs(delta):
            return f"{delta.total_seconds():.1f} s" if delta is not None else "—"

        return f"wait {secs(obj.wait_time)} · run {secs(obj.duration)}"

    @admin.action(
        description="Delete selected generations and their stored files",
        permissions=("delete",),
    )
    def delete_with_files(self, request, queryset):
        generations = list(queryset.prefetch_related("images"))
        files = sum(2 if img.thumbnail else 1 for gen in generations for img in gen.images.all())
        for gen in generations:
            if not gen.is_final:
                actions.cancel(gen, "Deleted by staff.")
        # The OutputImage post_delete receiver removes every object once this commits.
        deleted = (
            queryset.filter(pk__in=[g.pk for g in generations])
            .delete()[1]
            .get("generator.Generation", 0)
        )
        self.message_user(
            request,
            f"Deleted {deleted} generation(s) and {files} stored file(s).",
            messages.SUCCESS,
        )

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


@admin.register(UserLimit)
class UserLimitAdmin(admin.ModelAdmin):
    list_display = (
        "user",
        "model",
        "daily_image_limit",
        "monthly_image_limit",
        "max_running",
        "monthly_budget",
    )
    list_filter = ("model",)
    search_fields = ("user__email",)
    raw_id_fields = ("user",)


@admin.register(UsageEntry)
class UsageEntryAdmin(admin.ModelAdmin):
    """The ledger is written by the pipeline only; staff read it."""

    list_display = ("created_at", "user", "model", "kind", "images", "cost", "generation", "reason")
    list_filter = ("kind", "model", "created_at")
    search_fields = ("user__email", "generation__public_id")
    list_select_related = ("user", "model", "generation")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# Register the moderation, share links and exports admins.
from generator import admin_exports, admin_moderation, admin_sharing  # noqa: E402, F401
