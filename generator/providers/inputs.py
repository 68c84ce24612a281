"""What a generation asks for, in neutral names; adapters rename these to their API's fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from generator.errors import ProviderError

if TYPE_CHECKING:
    from generator.models import Generation


def parse_size(value: str) -> tuple[int, int]:
    """'1024x768' → (1024, 768); anything else is the user's error, not a retry."""
    try:
        width, height = (int(part) for part in str(value).lower().split("x"))
    except ValueError:
        raise ProviderError(f"Size {value!r} is not WIDTHxHEIGHT.") from None
    return width, height


def generation_inputs(gen: Generation) -> dict[str, Any]:
    """What a generation asks for, in neutral names; adapters rename to their API's fields.

    prompt, negative_prompt (if any), seed (if any), width/height (from a size), aspect_ratio
    (if any), num_images.
    """
    fields: dict[str, Any] = {"prompt": gen.prompt}
    if gen.negative_prompt:
        fields["negative_prompt"] = gen.negative_prompt
    if gen.seed is not None:
        fields["seed"] = gen.seed
    options = gen.options or {}
    if options.get("size"):
        fields["width"], fields["height"] = parse_size(options["size"])
    if options.get("aspect_ratio"):
        fields["aspect_ratio"] = options["aspect_ratio"]
    fields["num_images"] = gen.num_images
    return fields
