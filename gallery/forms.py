from __future__ import annotations

from datetime import datetime, timezone

from django import forms
from django.conf import settings
from django.core import signing

from generator.models import AIModel, Generation

MAX_PAGE_SIZE = 200
_signer = signing.Signer(salt="gallery.cursor")


def make_cursor(gen: Generation) -> str:
    return _signer.sign(f"{int(gen.created_at.timestamp() * 1_000_000)}.{gen.pk}")


def read_cursor(value: str) -> tuple[datetime, int]:
    raw = _signer.unsign(value)
    micros, pk = raw.split(".")
    created = datetime.fromtimestamp(int(micros) / 1_000_000, tz=timezone.utc)
    return created, int(pk)


class GalleryFilterForm(forms.Form):
    model = forms.ModelChoiceField(
        queryset=AIModel.objects.all(),
        to_field_name="slug",
        required=False,
        empty_label="All models",
        error_messages={"invalid_choice": "There is no model %(value)s."},
    )
    status = forms.ChoiceField(
        choices=[("", "Any status"), *Generation.Status.choices],
        required=False,
        error_messages={"invalid_choice": "%(value)s is not a status."},
    )
    page_size = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)
    cursor = forms.CharField(required=False, max_length=200)

    def clean_page_size(self) -> int:
        return self.cleaned_data.get("page_size") or settings.EASEL_GALLERY_PAGE_SIZE

    def clean_cursor(self):
        value = self.cleaned_data.get("cursor")
        if not value:
            return None
        try:
            return read_cursor(value)
        except (signing.BadSignature, ValueError, OverflowError, OSError):
            raise forms.ValidationError("That page link is broken or was changed.") from None
