"""generator/cards.py: the card's fields are written once, in cards.FIELDS."""

from __future__ import annotations

import re

import pytest
from django.template.loader import get_template

from generator import cards
from generator.models import Generation

# Properties of FIELDS the template may use as well.
DERIVED = {"is_final": "status", "get_status_display": "status"}


def test_the_card_template_shows_only_fields_the_list_pages_load():
    source = get_template(cards.CARD_TEMPLATE).template.source
    used = {
        "__".join(m.groups("")).rstrip("_")
        for m in re.finditer(r"\bgen\.(\w+)(?:\.(\w+))?", source)
    }
    used = {"model__name" if u.startswith("model__") else u for u in used}
    assert used, "the card template names no field of gen"
    assert used - set(cards.FIELDS) - set(DERIVED) == set()


@pytest.mark.django_db
def test_every_field_a_card_shows_is_in_its_cache_key(owner, make_generation):
    gen = (
        Generation.objects.select_related("model")
        .only(*cards.FIELDS)
        .get(pk=make_generation(owner).pk)
    )
    before = cards.card_version(gen)
    for field in cards.FIELDS:
        *path, last = field.split("__")
        holder = gen
        for part in path:
            holder = getattr(holder, part)
        old = getattr(holder, last)
        setattr(holder, last, f"changed {field}")
        assert cards.card_version(gen) != before, field
        setattr(holder, last, old)
    assert cards.card_version(gen) == before
