"""The gallery's GET filters: every value is validated here, so a bad URL is a 400, never a 500."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.conf import settings
from django.core import signing
from django.utils import timezone as djtz
from django.utils.functional import cached_property

from generator import counters
from generator.models import AIModel, Generation, ShareLink

MAX_PAGE_SIZE = 200
# Dates outside these make `date + 1 day` or the time-zone conversion overflow (a 500 before);
# no generation is that old or that new, so they are refused as a form error instead.
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(9000, 12, 31)
SORTS = [("newest", "Newest first"), ("oldest", "Oldest first")]
_signer = signing.Signer(salt="gallery.cursor")

# Filters that travel with a link to a detail page, so previous/next stays within them.
FILTER_KEYS = ("model", "status", "q", "from", "to", "sort", "starred")


def make_cursor(gen: Generation, sort: str = "newest") -> str:
    """A signed keyset position; the sort is part of it, so it cannot be replayed the other way."""
    return _signer.sign(f"{sort}.{int(gen.created_at.timestamp() * 1_000_000)}.{gen.pk}")


def read_cursor(value: str) -> tuple[str, datetime, int]:
    raw = _signer.unsign(value)
    sort, micros, pk = raw.split(".")
    if sort not in dict(SORTS):
        raise ValueError(sort)
    created = datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC)
    return sort, created, int(pk)


def model_directory() -> dict[str, AIModel]:
    """Every model by slug, disabled ones too (their generations stay in the gallery), from
    the cache: made anew whenever a model is saved or deleted (counters.MODELS_COUNTER)."""
    return counters.cached(
        counters.DIRECTORY_KEY,
        [counters.MODELS_COUNTER],
        lambda: {m.slug: m for m in AIModel.objects.only("id", "slug", "name")},
        max_age=lambda _: counters.MODEL_DIRECTORY_MAX_AGE,
    )


class GalleryFilterForm(forms.Form):
    # A plain field: the models are read once per request (`models`), for the choices the
    # page shows and for the look-up of the chosen one alike.
    model = forms.CharField(required=False, max_length=100)
    status = forms.ChoiceField(
        choices=[("", "Any status"), *Generation.Status.choices],
        required=False,
        error_messages={"invalid_choice": "%(value)s is not a status."},
    )
    q = forms.CharField(
        label="Search prompts",
        required=False,
        max_length=200,
        strip=True,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "e.g. fox"}),
    )
    sort = forms.ChoiceField(
        choices=SORTS,
        required=False,
        error_messages={"invalid_choice": "Sort by newest or oldest, not %(value)s."},
    )
    starred = forms.ChoiceField(
        label="Starred only",
        choices=[("", "No"), ("1", "Yes")],
        required=False,
        error_messages={"invalid_choice": "Use starred=1 or leave it out."},
    )
    page_size = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)
    cursor = forms.CharField(required=False, max_length=200)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # `from` is a Python keyword, so these two are added by name.
        date_widget = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
        self.fields["from"] = forms.DateField(
            label="From",
            required=False,
            widget=date_widget,
            input_formats=["%Y-%m-%d"],
            error_messages={"invalid": "Dates look like 2025-01-31."},
        )
        self.fields["to"] = forms.DateField(
            label="To",
            required=False,
            widget=date_widget,
            input_formats=["%Y-%m-%d"],
            error_messages={"invalid": "Dates look like 2025-01-31."},
        )
        # Keep the visual order: model, status, search, dates, sort, starred.
        order = ["model", "status", "q", "from", "to", "sort", "starred", "page_size", "cursor"]
        self.order_fields(order)

    @cached_property
    def models(self) -> dict[str, AIModel]:
        return model_directory()

    def shown(self) -> dict[str, str]:
        """The filters as the URL has them ("" where absent), to show them again."""
        return {key: self.data.get(key, "") for key in (*FILTER_KEYS, "page_size")}

    def model_choices(self) -> list[tuple[str, str]]:
        return [(slug, m.name) for slug, m in self.models.items()]

    def status_choices(self) -> list[tuple[str, str]]:
        return self.fields["status"].choices

    def sort_choices(self) -> list[tuple[str, str]]:
        return SORTS

    def clean_model(self) -> AIModel | None:
        slug = self.cleaned_data.get("model")
        if not slug:
            return None
        if slug not in self.models:
            raise forms.ValidationError(f"There is no model {slug}.")
        return self.models[slug]

    def clean_page_size(self) -> int:
        return self.cleaned_data.get("page_size") or settings.EASEL_GALLERY_PAGE_SIZE

    def clean_sort(self) -> str:
        return self.cleaned_data.get("sort") or "newest"

    def clean_starred(self) -> bool:
        return self.cleaned_data.get("starred") == "1"

    def clean_cursor(self):
        value = self.cleaned_data.get("cursor")
        if not value:
            return None
        try:
            return read_cursor(value)
        except (signing.BadSignature, ValueError, OverflowError, OSError):
            raise forms.ValidationError("That page link is broken or was changed.") from None

    def _clean_date(self, key: str):
        value = self.cleaned_data.get(key)
        if value and not EARLIEST_DATE <= value <= LATEST_DATE:
            raise forms.ValidationError(
                f"Use a date between {EARLIEST_DATE:%Y-%m-%d} and {LATEST_DATE:%Y-%m-%d}."
            )
        return value

    def clean_from(self):
        return self._clean_date("from")

    def clean_to(self):
        return self._clean_date("to")

    def clean(self):
        data = super().clean()
        start, end = data.get("from"), data.get("to")
        if start and end and start > end:
            self.add_error("to", "The end date is before the start date.")
        cursor = data.get("cursor")
        if cursor and "sort" in data and cursor[0] != data["sort"]:
            self.add_error("cursor", "That page link belongs to another sort order.")
        return data

    # --- what the views need -------------------------------------------------------------

    @property
    def is_filtered(self) -> bool:
        d = self.cleaned_data
        return bool(
            d.get("model")
            or d.get("status")
            or d.get("q")
            or d.get("from")
            or d.get("to")
            or d.get("starred")
        )

    def filter_key(self) -> str:
        """The filters but the status, as a string: names what filter_without_status() selects."""
        d = self.cleaned_data
        model = d.get("model")
        return repr(
            (model.pk if model else None, d.get("q"), self._bounds(), d.get("starred", False))
        )

    def _bounds(self):
        tz = djtz.get_current_timezone()
        start, end = self.cleaned_data.get("from"), self.cleaned_data.get("to")
        start_dt = datetime.combine(start, time.min, tzinfo=tz) if start else None
        end_dt = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz) if end else None
        return start_dt, end_dt

    def criteria(self) -> dict:
        """The filter as JSON-safe values (what an export keeps): GenerationQuerySet.matching
        applies it, for the gallery's pages and for the ZIP export alike."""
        d = self.cleaned_data
        model = d.get("model")
        start, end = self._bounds()
        return {
            "model": model.pk if model else None,
            "q": d.get("q") or "",
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "starred": bool(d.get("starred")),
            "status": d.get("status") or "",
            "sort": d.get("sort") or "newest",
        }

    def filter_without_status(self, qs):
        """Everything but the status: what the per-status counts are computed over."""
        return qs.matching({**self.criteria(), "status": ""})

    def filter(self, qs):
        return qs.matching(self.criteria())

    def ordered(self, qs):
        return qs.oldest_first() if self.cleaned_data["sort"] == "oldest" else qs.newest_first()

    def after(self, qs, created_at, pk):
        """Rows after a position in this form's sort order."""
        if self.cleaned_data["sort"] == "oldest":
            return qs.before_cursor(created_at, pk)
        return qs.after_cursor(created_at, pk)

    def before(self, qs, created_at, pk):
        """Rows before a position in this form's sort order, nearest first."""
        if self.cleaned_data["sort"] == "oldest":
            return qs.after_cursor(created_at, pk).newest_first()
        return qs.before_cursor(created_at, pk).oldest_first()


class ShareLinkForm(forms.Form):
    """The detail page's "Share" form: when the link expires and what the public page shows."""

    expiry = forms.ChoiceField(
        label="Link expires", choices=ShareLink.Expiry.choices, initial=ShareLink.Expiry.NEVER
    )
    show_prompt = forms.BooleanField(label="Show the prompt", required=False)
    allow_indexing = forms.BooleanField(label="Let search engines index it", required=False)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "share_%s")
        super().__init__(*args, **kwargs)
