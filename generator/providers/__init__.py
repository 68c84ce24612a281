"""Provider registry: a name (stored on AIModel.provider) maps to one Provider class.

Each provider lives in its own module here and registers itself with @register. Adding a
provider = copying the closest module and mapping its requests and responses.
"""

from __future__ import annotations

from importlib import import_module

from .base import Provider

_REGISTRY: dict[str, type[Provider]] = {}
_MODULES = ("local", "meteron", "scenario", "openai", "artificialstudio", "replicate")
_loaded = False


def register(cls: type[Provider]) -> type[Provider]:
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for module in _MODULES:
        try:
            import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:
            # Only a provider module that does not exist yet is skipped; a broken import
            # inside one is a bug and raises.
            if exc.name != f"{__name__}.{module}":
                raise
    _loaded = True


def provider_names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def provider_choices() -> list[tuple[str, str]]:
    _load()
    return [(name, _REGISTRY[name].label) for name in sorted(_REGISTRY)]


def get_provider_class(name: str) -> type[Provider] | None:
    _load()
    return _REGISTRY.get(name)


def get_provider(name: str) -> Provider:
    cls = get_provider_class(name)
    if cls is None:
        raise KeyError(f"Unknown provider {name!r}")
    return cls()
