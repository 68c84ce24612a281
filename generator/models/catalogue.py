"""The model catalogue: what users pick (AIModel), as staff configure it in the admin."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from generator.models.validation import model_json_errors


class AIModelQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True)


class AIModel(models.Model):
    """A model as users see it, backed by one provider's model id."""

    class TagWith(models.TextChoices):
        PUBLIC_ID = "public_id", "User's public id"
        EMAIL = "email", "User's e-mail"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    provider = models.CharField(max_length=32, help_text="Registry name of the provider.")
    remote_id = models.CharField(
        "provider's model id", max_length=200, blank=True, help_text="Sent to the provider."
    )
    enabled = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=100, help_text="Order in the model picker.")
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            'Allowed options: {"sizes": ["1024x1024"], "aspect_ratios": ["1:1"], '
            '"max_images": 4, "negative_prompt": true, "seed": true, "input_image": false, '
            '"prompt_max_length": 1000, "defaults": {"size": "1024x1024", "num_images": 1}}'
        ),
    )
    params = models.JSONField(
        default=dict,
        blank=True,
        help_text="Provider-specific settings (e.g. async mode, version, extra body fields).",
    )
    tag_with = models.CharField(
        max_length=16,
        choices=TagWith.choices,
        default=TagWith.PUBLIC_ID,
        help_text="What is sent to the provider as the user tag.",
    )
    timeout_seconds = models.PositiveIntegerField(
        default=600, help_text="A generation not finished by then fails with 'timed out'."
    )
    # Fair-use defaults for every user of this model (blank = unlimited); per-user overrides
    # live in UserLimit. Enforced by generator.limits before anything is created or sent.
    daily_image_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Images per user per day (blank = unlimited)."
    )
    monthly_image_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Images per user per calendar month (blank = unlimited)."
    )
    max_running = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Generations a user may have queued or running at once (blank = unlimited).",
    )
    price_per_image = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="What one image costs (currency units; blank = free).",
    )
    price_per_megapixel = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Added per megapixel of each image, where the size is known (blank = none).",
    )
    retention_days = models.PositiveIntegerField(
        "keep images for (days)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=(
            "Days after a generation of this model finished that its images are kept "
            "(blank = the global retention policy; 0 is not allowed)."
        ),
    )
    prompt_template = models.CharField(
        max_length=500,
        blank=True,
        help_text="Optional, e.g. 'a {theme} {room}'; each {name} becomes a select box.",
    )
    template_choices = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"theme": ["Modern", "Vintage"], "room": [...]}'
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AIModelQuerySet.as_manager()

    class Meta:
        ordering = ("position", "name")
        verbose_name = "AI model"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The JSON fields follow their schema (generator.models.validation), wherever a model is
        validated: the admin's form, `addmodel`, full_clean() in a shell."""
        errors = model_json_errors(self)
        if errors:
            raise ValidationError(errors)

    def tag_for(self, user) -> str:
        """What the provider sees as the user: the stable public id unless staff chose the
        e-mail."""
        return user.email if self.tag_with == self.TagWith.EMAIL else user.public_id

    # Options, with the defaults a model gets when staff leave a key out.
    def option(self, key: str, default: Any = None) -> Any:
        return (self.options or {}).get(key, default)

    @property
    def sizes(self) -> list[str]:
        return list(self.option("sizes", []))

    @property
    def aspect_ratios(self) -> list[str]:
        return list(self.option("aspect_ratios", []))

    @property
    def max_images(self) -> int:
        return int(self.option("max_images", 4))

    @property
    def supports_negative_prompt(self) -> bool:
        return bool(self.option("negative_prompt", False))

    @property
    def supports_seed(self) -> bool:
        return bool(self.option("seed", True))

    @property
    def accepts_input_image(self) -> bool:
        return bool(self.option("input_image", False))

    @property
    def prompt_max_length(self) -> int:
        return int(self.option("prompt_max_length", 1000))

    @property
    def defaults(self) -> dict[str, Any]:
        return dict(self.option("defaults", {}))
