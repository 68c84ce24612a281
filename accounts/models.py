"""Easel's user: e-mail login (allauth), a stable public id for provider tags, a priority tier."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models
from django.utils import timezone


def new_public_id() -> str:
    # What providers see as the user tag (X-User, `user`): stable, opaque, not the e-mail.
    return "u_" + secrets.token_hex(8)


class UserManager(DjangoUserManager):
    """Username is kept (Django's admin expects it) but filled from the e-mail when blank."""

    def _create_user(self, username, email, password, **extra_fields):
        username = username or email
        return super()._create_user(username, email, password, **extra_fields)

    def create_user(self, username=None, email=None, password=None, **extra_fields):
        return super().create_user(username or email, email, password, **extra_fields)

    def create_superuser(self, username=None, email=None, password=None, **extra_fields):
        return super().create_superuser(username or email, email, password, **extra_fields)


class User(AbstractUser):
    class Priority(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    email = models.EmailField("email address", unique=True)
    public_id = models.CharField(max_length=24, unique=True, default=new_public_id, editable=False)
    priority = models.CharField(
        max_length=8,
        choices=Priority.choices,
        default=Priority.MEDIUM,
        help_text="Maps to Meteron's X-Priority and to the Celery queue priority.",
    )

    # Service users (issue #17): made by a service key for an end user named in X-User.
    service_owner = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="service_users",
        help_text="The service key owner this end user belongs to (API only).",
    )
    external_id = models.CharField(
        max_length=200, blank=True, help_text="The end user's id in the service (X-User)."
    )

    objects = UserManager()

    class Meta(AbstractUser.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["service_owner", "external_id"],
                condition=models.Q(service_owner__isnull=False),
                name="user_unique_service_external_id",
            )
        ]

    def save(self, *args, **kwargs):
        if not self.username:
            self.username = self.email
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return self.email or self.username

    # Redis priorities: 0 is served first. Keep room either side of the default (5).
    CELERY_PRIORITIES = {"high": 2, "medium": 5, "low": 8}

    @property
    def celery_priority(self) -> int:
        return self.CELERY_PRIORITIES[self.priority]

    def priority_for(self, asked: str | None) -> int:
        """The Celery priority of a submission that asks for tier `asked` (an API's X-Priority):
        never above the user's own tier; an unknown or missing value is the user's tier."""
        wanted = self.CELERY_PRIORITIES.get((asked or "").strip().lower(), self.celery_priority)
        return max(wanted, self.celery_priority)


# --- API keys (issue #17) ---------------------------------------------------------------------

KEY_PREFIX = "easel_"


def hash_key(token: str) -> str:
    # A 256-bit random token needs no slow hash: sha256 is preimage-resistant and lets the
    # look-up be one indexed equality.
    return hashlib.sha256(token.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def live(self):
        return self.filter(revoked_at__isnull=True)

    def for_token(self, token: str):
        """The live key for a presented token, or None (also for anything malformed)."""
        if not token.startswith(KEY_PREFIX) or len(token) > 100:
            return None
        return self.live().select_related("user").filter(key_hash=hash_key(token)).first()


class ApiKey(models.Model):
    """A bearer key: personal (acts as its owner) or service (names end users in X-User)."""

    class Kind(models.TextChoices):
        PERSONAL = "personal", "Personal"
        SERVICE = "service", "Service (end users in X-User)"

    user = models.ForeignKey(
        "accounts.User", on_delete=models.CASCADE, related_name="api_keys", help_text="Owner."
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PERSONAL)
    prefix = models.CharField(max_length=16, editable=False, help_text="Shown to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    requests = models.PositiveBigIntegerField(default=0, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user, name: str, kind: str = Kind.PERSONAL) -> tuple[ApiKey, str]:
        """A new key and its token; the token exists only in this return value."""
        token = KEY_PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(
            user=user, name=name, kind=kind, prefix=token[:14], key_hash=hash_key(token)
        )
        return key, token

    def set_token(self, token: str) -> None:
        self.prefix, self.key_hash = token[:14], hash_key(token)

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None

    def revoke(self) -> bool:
        updated = ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        self.revoked_at = self.revoked_at or timezone.now()
        return bool(updated)

    def record_use(self) -> None:
        ApiKey.objects.filter(pk=self.pk).update(
            requests=models.F("requests") + 1, last_used_at=timezone.now()
        )

    def service_user(self, external_id: str):
        """The account for (this service key's owner, external id), made on first use with no
        usable password: it signs in nowhere, it only generates through this service."""
        owner = self.user
        digest = hashlib.sha256(f"{owner.pk}:{external_id}".encode()).hexdigest()[:20]
        email = f"svc-{digest}@service.invalid"
        user, _ = User.objects.get_or_create(
            service_owner=owner,
            external_id=external_id,
            defaults={
                "email": email,
                "username": email,
                "priority": owner.priority,
                # Unusable from the first INSERT (no second UPDATE on an API request's path).
                "password": make_password(None),
            },
        )
        return user
