"""What a generation costs at the model's prices: price per image, plus price per megapixel
where the request's size ("WxH" in options) is known."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

_SIZE = re.compile(r"^\s*(\d{1,5})\s*[x×]\s*(\d{1,5})\s*$")
CENT = Decimal("0.0001")  # the ledger's precision (4 places)


def megapixels(options: dict | None) -> Decimal | None:
    match = _SIZE.match(str((options or {}).get("size") or ""))
    if not match:
        return None
    return Decimal(int(match[1]) * int(match[2])) / Decimal(1_000_000)


def cost_of(gen) -> Decimal:
    model = gen.model
    per_image = Decimal(model.price_per_image or 0)
    per_mp = Decimal(model.price_per_megapixel or 0)
    if per_mp:
        mp = megapixels(gen.options)
        if mp is not None:
            per_image += per_mp * mp
    return (per_image * gen.num_images).quantize(CENT, rounding=ROUND_HALF_UP)
