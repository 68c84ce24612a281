"""Share a generation (issue #18): a revocable public link with an unguessable token.

The link is the only thing a visitor holds; the page it opens (gallery.share_views) shows the
generation's images and, only if the owner ticked it, the prompt — never who made it. Storage
work for a link (its own copies of the images on S3) is generator.sharing; state changes are
the methods below.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

# secrets.token_urlsafe(24): 192 random bits, always 32 URL-safe characters (config.urls'
# ShareTokenConverter matches exactly this, so junk is a 404 before any query).
TOKEN_BYTES = 24
TOKEN_LENGTH = 32


def new_share_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


class ShareLinkQuerySet(models.QuerySet):
    def live(self, now=None):
        """Links that open: not revoked, not expired."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def for_user(self, user):
        return self.filter(generation__user=user)


class ShareLink(models.Model):
    class Expiry(models.TextChoices):
        NEVER = "never", "Never"
        DAY = "1", "In 1 day"
        WEEK = "7", "In 7 days"
        MONTH = "30", "In 30 days"

    class State(models.TextChoices):
        LIVE = "live", "Live"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    generation = models.ForeignKey(
        "generator.Generation", on_delete=models.CASCADE, related_name="share_links"
    )
    token = models.CharField(max_length=64, unique=True, default=new_share_token, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    show_prompt = models.BooleanField(default=False, help_text="The public page shows the prompt.")
    allow_indexing = models.BooleanField(
        default=False, help_text="Search engines may index the page (no noindex)."
    )
    view_count = models.PositiveIntegerField(default=0)
    last_viewed_at = models.DateTimeField(null=True, blank=True)
    # S3: the link's own copies of the images (object keys that name neither the owner nor the
    # generation, unlike the originals' generations/<user>/<generation>/…), so a presigned URL
    # on the public page reveals nobody; deleted with the link's revocation or its row.
    stored_names = models.JSONField(default=list, blank=True, editable=False)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.generation.public_id} · {self.token[:6]}… ({self.state})"

    @staticmethod
    def expiry_for(choice: str, now=None):
        """expires_at for one of Expiry's values (None: never)."""
        if choice == ShareLink.Expiry.NEVER:
            return None
        return (now or timezone.now()) + timedelta(days=int(choice))

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return self.State.EXPIRED
        return self.State.LIVE

    @property
    def state_label(self) -> str:
        return self.State(self.state).label

    @property
    def is_live(self) -> bool:
        return self.state == self.State.LIVE

    def revoke(self, now=None) -> bool:
        """Revoke for good; True if this call did it (a second revoke changes nothing)."""
        now = now or timezone.now()
        done = ShareLink.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=now)
        if done:
            self.revoked_at = now
        return bool(done)

    def record_view(self) -> None:
        """One UPDATE per view of the public page: how often, and when last."""
        ShareLink.objects.filter(pk=self.pk).update(
            view_count=F("view_count") + 1, last_viewed_at=timezone.now()
        )
