"""Easel's user: e-mail login (allauth), a stable public id for provider tags, a priority tier."""

from __future__ import annotations

import secrets

from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models


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

    objects = UserManager()

    def save(self, *args, **kwargs):
        if not self.username:
            self.username = self.email
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return self.email or self.username

    @property
    def celery_priority(self) -> int:
        # Redis priorities: 0 is served first. Keep room either side of the default (5).
        return {"high": 2, "medium": 5, "low": 8}[self.priority]
