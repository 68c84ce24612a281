"""Easel's own copy of each output image (OutputImage); the provider's URL is only a record."""

from __future__ import annotations

from django.db import models


def output_upload_to(instance: OutputImage, filename: str) -> str:
    gen = instance.generation
    return f"generations/{gen.user.public_id}/{gen.public_id}/{filename}"


class OutputImage(models.Model):
    """One image in Easel's own storage. The provider's URL is kept only as a record."""

    generation = models.ForeignKey(
        "generator.Generation", on_delete=models.CASCADE, related_name="images"
    )
    index = models.PositiveSmallIntegerField()
    file = models.FileField(max_length=300, upload_to=output_upload_to)
    thumbnail = models.FileField(max_length=300, blank=True, upload_to=output_upload_to)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=64)
    thumbnail_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    provider_url = models.TextField(blank=True, help_text="Where the provider served it (expires).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # By the column, not the relation: "generation" would join generations to order by
        # their own Meta.ordering (created_at), on every images query.
        ordering = ("generation_id", "index")
        constraints = [
            models.UniqueConstraint(fields=["generation", "index"], name="image_unique_index")
        ]

    def __str__(self) -> str:
        return f"{self.generation.public_id} #{self.index}"

    @property
    def extension(self) -> str:
        return extension_of(self.content_type)

    @property
    def download_name(self) -> str:
        return download_name(self.generation.public_id, self.index, self.content_type)


def extension_of(content_type: str) -> str:
    return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(content_type, "bin")


def download_name(generation_public_id: str, index: int, content_type: str) -> str:
    """`easel-<generation>-<n>.<ext>`: a download's file name, and its name in a ZIP export."""
    return f"easel-{generation_public_id}-{index + 1}.{extension_of(content_type)}"
