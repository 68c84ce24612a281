"""The prompt form: one form for every model, validated against the chosen model's options."""

from __future__ import annotations

import re

from django import forms

from generator.models import AIModel

SEED_MAX = 2**32 - 1


class GenerationForm(forms.Form):
    model = forms.ModelChoiceField(
        queryset=AIModel.objects.enabled(),
        to_field_name="slug",
        empty_label=None,
        error_messages={"invalid_choice": "That model is not available. Pick one from the list."},
    )
    prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Describe the image…"}),
        strip=True,
        error_messages={"required": "Write a prompt first."},
    )
    negative_prompt = forms.CharField(
        required=False,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What to leave out (optional)"}),
    )
    size = forms.CharField(required=False, max_length=16)
    aspect_ratio = forms.CharField(required=False, max_length=8)
    num_images = forms.TypedChoiceField(
        label="Images",
        choices=[(n, str(n)) for n in range(1, 5)],
        coerce=int,
        initial=1,
    )
    seed = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=SEED_MAX,
        help_text="Leave empty for a random seed.",
    )
    idempotency_key = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].label_from_instance = lambda m: (
            f"{m.name} — {m.provider_label}" if m.is_offline else m.name
        )

    def clean_idempotency_key(self) -> str:
        key = self.cleaned_data.get("idempotency_key") or ""
        if key and not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", key):
            raise forms.ValidationError("The form was tampered with; reload the page.")
        return key

    def clean(self):
        data = super().clean()
        model: AIModel | None = data.get("model")
        if model is None:
            return data
        prompt = data.get("prompt") or ""
        if prompt and len(prompt) > model.prompt_max_length:
            self.add_error(
                "prompt",
                f"The prompt is {len(prompt)} characters; {model.name} takes at most "
                f"{model.prompt_max_length}.",
            )
        options: dict = {}
        size = data.get("size") or model.defaults.get("size", "")
        if model.sizes:
            if not size:
                size = model.sizes[0]
            if size not in model.sizes:
                self.add_error("size", f"{model.name} does not offer size {size}.")
            options["size"] = size
        elif data.get("size"):
            self.add_error("size", f"{model.name} does not take a size.")
        ratio = data.get("aspect_ratio") or model.defaults.get("aspect_ratio", "")
        if model.aspect_ratios:
            if not ratio:
                ratio = model.aspect_ratios[0]
            if ratio not in model.aspect_ratios:
                self.add_error("aspect_ratio", f"{model.name} does not offer aspect ratio {ratio}.")
            options["aspect_ratio"] = ratio
        elif data.get("aspect_ratio"):
            self.add_error("aspect_ratio", f"{model.name} does not take an aspect ratio.")
        num = data.get("num_images") or 1
        if num > model.max_images:
            self.add_error("num_images", f"{model.name} makes at most {model.max_images} images.")
        if data.get("negative_prompt") and not model.supports_negative_prompt:
            self.add_error("negative_prompt", f"{model.name} does not take a negative prompt.")
        if data.get("seed") is not None and not model.supports_seed:
            self.add_error("seed", f"{model.name} does not take a seed.")
        data["options"] = options
        return data

