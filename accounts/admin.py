import secrets

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserCreationForm
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from generator.actions import deactivate_users, usage_summary
from generator.erase import erase_user
from generator.models import Generation, UserLimit

from .models import KEY_PREFIX, ApiKey, User


class UserLimitInline(admin.TabularInline):
    model = UserLimit
    extra = 0
    fields = ("model", "daily_image_limit", "monthly_image_limit", "max_running", "note")
    verbose_name = "limit override"
    verbose_name_plural = "Limit overrides (blank = the model's default; no model = all models)"


class LastGenerationsInline(admin.TabularInline):
    model = Generation
    fk_name = "user"
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    fields = ("public_id", "model", "status", "num_images", "created_at", "error")
    readonly_fields = fields
    verbose_name_plural = "Last generations"

    def get_queryset(self, request):
        # The newest few only; a user's full history is the Generation list filtered by user.
        qs = super().get_queryset(request).select_related("model")
        ids = list(qs.order_by("-created_at", "-id").values_list("id", flat=True)[:10])
        return qs.filter(id__in=ids).order_by("-created_at", "-id")

    def has_add_permission(self, request, obj=None):
        return False


class UserAddForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("email",)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = UserAddForm
    list_display = (
        "email",
        "public_id",
        "priority",
        "service_owner",
        "external_id",
        "is_active",
        "is_staff",
        "date_joined",
    )
    list_filter = (
        "is_active",
        "is_staff",
        "priority",
        ("service_owner", admin.EmptyFieldListFilter),
    )
    search_fields = ("email", "public_id", "username", "external_id")
    ordering = ("-date_joined",)
    readonly_fields = (
        "public_id",
        "last_login",
        "date_joined",
        "usage_now",
        "service_owner",
        "external_id",
    )
    inlines = (UserLimitInline, LastGenerationsInline)
    actions = ("deactivate",)
    fieldsets = (
        (None, {"fields": ("email", "username", "password", "public_id")}),
        ("Generation", {"fields": ("priority", "usage_now")}),
        ("API service user", {"fields": ("service_owner", "external_id")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()

    @admin.display(description="Usage now")
    def usage_now(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        rows = [(a.model.name, a.summary()) for a in usage_summary(obj)]
        if not rows:
            return "—"
        return format_html_join(mark_safe("<br>"), "<strong>{}</strong>: {}", rows)

    @admin.action(description="Deactivate selected users and cancel their queued generations")
    # Staff delete a user through the same path as the user's own "Delete my account":
    # storage objects first, ledger anonymised, then the row (generator.erase).
    def delete_model(self, request, obj):
        erase_user(obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            erase_user(user)

    def deactivate(self, request, queryset):
        users, canceled = deactivate_users(queryset.exclude(pk=request.user.pk))
        self.message_user(
            request,
            f"Deactivated {users} user(s); canceled {canceled} queued or running generation(s).",
            messages.SUCCESS,
        )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Every key: staff list, issue (service keys for an app), revoke, and see use."""

    list_display = (
        "name",
        "prefix",
        "kind",
        "user",
        "created_at",
        "last_used_at",
        "requests",
        "revoked_at",
    )
    list_filter = ("kind", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix", "user__email")
    fields = (
        "user",
        "name",
        "kind",
        "prefix",
        "created_at",
        "last_used_at",
        "requests",
        "revoked_at",
    )
    readonly_fields = ("prefix", "created_at", "last_used_at", "requests", "revoked_at")
    raw_id_fields = ("user",)
    actions = ("revoke",)

    def save_model(self, request, obj, form, change):
        if not change:
            token = KEY_PREFIX + secrets.token_urlsafe(32)
            obj.set_token(token)
            super().save_model(request, obj, form, change)
            self.message_user(
                request,
                f"Key created. Copy it now, it is not shown again: {token}",
                messages.WARNING,
            )
            return
        super().save_model(request, obj, form, change)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        n = sum(key.revoke() for key in queryset)
        self.message_user(request, f"Revoked {n} key(s).", messages.SUCCESS)
