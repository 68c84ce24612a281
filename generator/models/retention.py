"""How long images are kept (issue #18): one global policy staff edit in the admin, and a
model's own `AIModel.retention_days` over it. What is removed, and when, is generator/retention.py
(the selection, `GenerationQuerySet.expirable`) and `Generation.expire_images` (the change)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from generator.models.catalogue import AIModel


class RetentionPolicy(models.Model):
    """The one global row (pk 1). Without a row, settings.EASEL_RETENTION_DAYS applies; a saved
    row wins over the environment, so staff can also set "forever" (blank) there."""

    keep_days = models.PositiveIntegerField(
        "keep images for (days)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=(
            "Days after a generation finished that its images (outputs, thumbnails and the "
            "uploaded photo) are kept, for every model without its own retention. "
            "Blank = forever. The prompt, settings and the usage ledger are always kept."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "retention policy"
        verbose_name_plural = "retention policy"

    def __str__(self) -> str:
        return f"Keep images {self.keep_days} days" if self.keep_days else "Keep images forever"

    def save(self, *args, **kwargs) -> None:
        self.pk = 1  # a singleton: saving another row edits the one policy
        super().save(*args, **kwargs)

    @classmethod
    def global_days(cls) -> int | None:
        """Days images are kept for a model without its own retention; None = forever."""
        row = cls.objects.filter(pk=1).first()
        if row is not None:
            return row.keep_days or None
        return settings.EASEL_RETENTION_DAYS or None

    @staticmethod
    def days_for(model: AIModel, global_days: int | None) -> tuple[int | None, str]:
        """(days, where they come from: "model" or "global") for one model; None = forever.
        A model's 0 (only a QuerySet.update can write it: the field's validator refuses it)
        counts as blank, i.e. the global policy."""
        if model.retention_days:
            return model.retention_days, "model"
        return global_days, "global"
