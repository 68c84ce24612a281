"""The declared schema of AIModel.options, params and template_choices.

Every page reads these JSON fields (`AIModel.max_images` does `int(...)`, the prompt form
iterates `sizes`), so a staff typo such as `"max_images": "lots"` or `"sizes": "512x512"` used to
be a 500 on `/` for every user. `model_json_errors` is called wherever a model is saved by hand
(the admin's AIModel form, `manage.py addmodel`) and turns each mistake into a message.
"""

from __future__ import annotations

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
