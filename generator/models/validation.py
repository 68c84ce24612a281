"""The declared schema of AIModel.options, params and template_choices.

Every page reads these JSON fields (`AIModel.max_images` does `int(...)`, the prompt form
iterates `sizes`), so a staff typo such as `"max_images": "lots"` or `"sizes": "512x512"` used to
be a 500 on `/` for every user. `model_json_errors` is called wherever a model is saved by hand
(the admin's AIModel form, `manage.py addmodel`) and turns each mistake into a message.
"""

from __future__ import annotations

import re
from typing import Any

LIST_OF_TEXT = ("sizes", "aspect_ratios")
BOOLEANS = ("negative_prompt", "seed", "input_image")
POSITIVE_INTS = {"max_images": 100, "prompt_max_length": 100_000}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def options_errors(options: Any) -> list[str]:
    if not isinstance(options, dict):
        return ['Options must be a JSON object, e.g. {"max_images": 4}.']
    errors = []  # other keys are left alone: providers and templates read their own
    for key in LIST_OF_TEXT:
        value = options.get(key)
        if key in options and not (
            isinstance(value, list) and all(isinstance(v, str) and v for v in value)
        ):
            errors.append(f'"{key}" must be a list of text, e.g. ["1024x1024"].')
    for key in BOOLEANS:
        if key in options and not isinstance(options[key], bool):
            errors.append(f'"{key}" must be true or false.')
    for key, top in POSITIVE_INTS.items():
        value = options.get(key)
        if key in options and not (_is_int(value) and 1 <= value <= top):
            errors.append(f'"{key}" must be a whole number from 1 to {top}.')
    if "defaults" in options and not isinstance(options["defaults"], dict):
        errors.append('"defaults" must be a JSON object, e.g. {"num_images": 1}.')
    return errors


def params_errors(params: Any) -> list[str]:
    if not isinstance(params, dict):
        return ['Params must be a JSON object, e.g. {"async": false}.']
    return []


def template_choices_errors(choices: Any) -> list[str]:
    if not isinstance(choices, dict):
        return ['Template choices must be a JSON object, e.g. {"theme": ["Modern"]}.']
    return [
        f'Template choice "{name}" must be a list of text.'
        for name, values in choices.items()
        if not (isinstance(values, list) and all(isinstance(v, str) for v in values))
    ]


def model_json_errors(model) -> dict[str, list[str]]:
    """Field name → messages, for every JSON field of `model` that breaks the schema."""
    found = {
        "options": options_errors(model.options),
        "params": params_errors(model.params),
        "template_choices": template_choices_errors(model.template_choices),
    }
    return {field: messages for field, messages in found.items() if messages}


# --- A generation's settings against its model's current options ------------------------
PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]{0,30})\}")


def template_names(template: str) -> list[str]:
    """The {name}s of a prompt template, in order, once each."""
    return list(dict.fromkeys(PLACEHOLDER.findall(template or "")))


def fill_template(template: str, values: dict[str, str]) -> str:
    # A plain substitution, not str.format: staff text never reaches a format engine.
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def settings_errors(
    model,
    *,
    prompt: str,
    options: dict[str, Any],
    num_images: int,
    negative_prompt: str,
    seed_given: bool,
    has_photo: bool,
    check_template: bool = True,
) -> dict[str, str]:
    """Form field → message for each setting `model` does not take (today's options): the one
    check behind the prompt form and a Re-run/Retry of an older generation."""
    errors: dict[str, str] = {}
    if check_template:
        chosen = options.get("template") or {}
        for name in template_names(model.prompt_template):
            allowed = [str(v) for v in (model.template_choices or {}).get(name, [])]
            if chosen.get(name) not in allowed:
                errors[f"tpl_{name}"] = f"Pick a {name.replace('_', ' ')} from the list."
    if prompt and len(prompt) > model.prompt_max_length:
        errors["prompt"] = (
            f"The prompt is {len(prompt)} characters; {model.name} takes at most "
            f"{model.prompt_max_length}."
        )
    for key, allowed, label in (
        ("size", model.sizes, "size"),
        ("aspect_ratio", model.aspect_ratios, "aspect ratio"),
    ):
        value = options.get(key)
        if allowed and value not in allowed:
            errors[key] = f"{model.name} does not offer {label} {value}."
        elif not allowed and value:
            errors[key] = f"{model.name} does not take a {label}."
    if num_images > model.max_images:
        errors["num_images"] = f"{model.name} makes at most {model.max_images} images."
    if negative_prompt and not model.supports_negative_prompt:
        errors["negative_prompt"] = f"{model.name} does not take a negative prompt."
    if seed_given and not model.supports_seed:
        errors["seed"] = f"{model.name} does not take a seed."
    if model.accepts_input_image and not has_photo:
        errors["input_image"] = f"{model.name} needs a photo to work from."
    elif has_photo and not model.accepts_input_image:
        errors["input_image"] = f"{model.name} does not take an input image."
    return errors
