"""The provider registry: built-in providers by dotted path, test equipment by register()."""

from __future__ import annotations

import pytest

from generator import providers
from generator.providers.base import Provider


@pytest.mark.parametrize("name", sorted(providers.BUILTIN))
def test_every_builtin_provider_imports_under_its_own_name(name):
    cls = providers.get_provider_class(name)
    assert issubclass(cls, Provider) and cls.name == name
    assert providers.get_provider_class(name) is cls  # imported once, then cached


def test_labels_and_offline_come_from_the_class_or_fall_back_to_the_raw_name():
    assert providers.label("local") == "Local renderer (offline)"
    assert providers.is_offline("local") and not providers.is_offline("openai")
    assert providers.label("no-such-provider") == "no-such-provider"
    assert not providers.is_offline("no-such-provider")
    assert providers.get_provider_class("no-such-provider") is None
    with pytest.raises(KeyError):
        providers.get_provider("no-such-provider")
    assert ("openai", "OpenAI") in providers.provider_choices()


def test_test_equipment_registers_and_unregisters_a_provider():
    class Gadget(Provider):
        name, label = "gadget", "Gadget"

    assert providers.register(Gadget) is Gadget
    try:
        assert "gadget" in providers.provider_names()
        assert isinstance(providers.get_provider("gadget"), Gadget)
    finally:
        providers.unregister("gadget")
    assert "gadget" not in providers.provider_names()
    assert providers.get_provider_class("gadget") is None
