"""The prompt form: one form for every model, validated against the chosen model's options."""

from __future__ import annotations

import re

from django import forms

from generator import providers
from generator.imaging import InputImageError, clean_input_image
from generator.models import AIModel
from generator.models.validation import fill_template, settings_errors, template_names

SEED_MAX = 2**32 - 1


class ModelField(forms.ModelChoiceField):
    """A model picker that resolves the posted slug from the models the form already loaded,
    instead of a query of its own (`enabled` is set per form; None falls back to a query)."""

    enabled: dict[str, AIModel] | None = None

    def to_python(self, value):
        if self.enabled is None or value in self.empty_values:
            return super().to_python(value)
        model = self.enabled.get(str(getattr(value, "slug", value)))
        if model is None:
            raise forms.ValidationError(
                self.error_messages["invalid_choice"],
                code="invalid_choice",
                params={"value": value},
            )
        return model


class GenerationForm(forms.Form):
    model = ModelField(
        queryset=AIModel.objects.enabled(),
        to_field_name="slug",
        empty_label=None,
        error_messages={"invalid_choice": "That model is not available. Pick one from the list."},
    )
    prompt = forms.CharField(
        required=False,  # required unless the model builds the prompt from a template
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Describe the image…"}),
        strip=True,
    )
    input_image = forms.FileField(
        label="Photo",
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
        help_text="JPEG, PNG or WebP.",
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
            f"{m.name} — {providers.label(m.provider)}"
            if providers.is_offline(m.provider)
            else m.name
        )
        # One select per template placeholder of any enabled model (`tpl_theme`, `tpl_room`);
        # the script shows the ones the chosen model uses, and clean() checks them per model.
        self.template_fields: list[str] = []
        enabled = list(AIModel.objects.enabled())  # the one models query of a submission
        self.fields["model"].enabled = {m.slug: m for m in enabled}
        for m in enabled:
            for name in template_names(m.prompt_template):
                key = f"tpl_{name}"
                values = [str(v) for v in (m.template_choices or {}).get(name, [])]
                if key not in self.fields:
                    self.fields[key] = forms.ChoiceField(
                        label=name.replace("_", " ").capitalize(), required=False, choices=[]
                    )
                    self.template_fields.append(key)
                field = self.fields[key]
                known = {v for v, _ in field.choices}
                field.choices = [*field.choices, *((v, v) for v in values if v not in known)]

    @property
    def template_bound_fields(self):
        return [self[key] for key in self.template_fields]

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
        names = template_names(model.prompt_template)
        if names:
            values = {}
            for name in names:
                value = self.data.get(f"tpl_{name}", "")
                allowed = [str(v) for v in (model.template_choices or {}).get(name, [])]
                if value not in allowed:
                    self.add_error(
                        f"tpl_{name}" if f"tpl_{name}" in self.fields else None,
                        f"Pick a {name.replace('_', ' ')} from the list.",
                    )
                values[name] = value
            if len(values) == len(names) and not any(self.errors.get(f"tpl_{n}") for n in names):
                built = fill_template(model.prompt_template, values)
                prompt = f"{built}, {prompt}" if prompt else built  # typed text adds detail
                data["prompt"] = prompt
                data["template_values"] = values
        elif not prompt:
            self.add_error("prompt", "Write a prompt first.")
        options: dict = {}
        if model.sizes:
            options["size"] = data.get("size") or model.defaults.get("size") or model.sizes[0]
        elif data.get("size"):
            options["size"] = data["size"]
        if model.aspect_ratios:
            options["aspect_ratio"] = (
                data.get("aspect_ratio")
                or model.defaults.get("aspect_ratio")
                or model.aspect_ratios[0]
            )
        elif data.get("aspect_ratio"):
            options["aspect_ratio"] = data["aspect_ratio"]
        upload = data.get("input_image")
        problems = settings_errors(
            model,
            prompt=prompt,
            options=options,
            num_images=data.get("num_images") or 1,
            negative_prompt=data.get("negative_prompt") or "",
            seed_given=data.get("seed") is not None,
            has_photo=bool(upload),
            check_template=False,  # checked above, field by field, before the prompt was built
        )
        for field, message in problems.items():
            self.add_error(field if field in self.fields else None, message)
        if upload and "input_image" not in problems:
            try:
                data["input_image"] = clean_input_image(upload)
            except InputImageError as exc:
                self.add_error("input_image", str(exc))
        if data.get("template_values"):
            options["template"] = data["template_values"]
        data["options"] = options
        return data
