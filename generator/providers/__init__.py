"""Provider registry: a name (stored on AIModel.provider) maps to one Provider class.

`BUILTIN` lists every provider by dotted path; a class is imported the first time its name is
asked for and cached, so provider modules never import this package and the registry imports
none of them until needed. Adding a provider = copying the closest module, mapping its requests
and responses, and adding one line here. `register()` / `unregister()` are for test equipment
(providers that exist only in the test process or a test worker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from generator.providers.base import Provider

BUILTIN: dict[str, str] = {
    "local": "generator.providers.local.LocalProvider",
    "meteron": "generator.providers.meteron.MeteronProvider",
    "scenario": "generator.providers.scenario.ScenarioProvider",
    "openai": "generator.providers.openai.OpenAIProvider",
    "airefinery": "generator.providers.openai.AIRefineryProvider",
    "artificialstudio": "generator.providers.artificialstudio.ArtificialStudioProvider",
    "replicate": "generator.providers.replicate.ReplicateProvider",
}

# Classes imported from BUILTIN so far, and those registered by test equipment.
_REGISTRY: dict[str, type[Provider]] = {}


def register(cls: type[Provider]) -> type[Provider]:
    """Add (or replace) a provider class under its `name`; usable as a class decorator."""
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Forget a registered class; a built-in name goes back to its BUILTIN class."""
    _REGISTRY.pop(name, None)


def get_provider_class(name: str) -> type[Provider] | None:
    cls = _REGISTRY.get(name)
    if cls is None and name in BUILTIN:
        cls = _REGISTRY[name] = import_string(BUILTIN[name])
    return cls


def get_provider(name: str) -> Provider:
    cls = get_provider_class(name)
    if cls is None:
        raise KeyError(f"Unknown provider {name!r}")
    return cls()


def provider_names() -> list[str]:
    return sorted({*BUILTIN, *_REGISTRY})


def provider_choices() -> list[tuple[str, str]]:
    return [(name, label(name)) for name in provider_names()]


def label(name: str) -> str:
    """The provider's human name, or the raw name when no such provider is installed."""
    cls = get_provider_class(name)
    return cls.label if cls else name


def is_offline(name: str) -> bool:
    """True only for a provider that needs no network at all (the local renderer)."""
    cls = get_provider_class(name)
    return bool(cls and cls.offline)
