"""`{% load providers %}` … `{{ model.provider|provider_label }}`: a provider's human name from
the registry (the raw name when no such provider is installed)."""

from __future__ import annotations

from django import template

from generator import providers

register = template.Library()


@register.filter
def provider_label(name: str) -> str:
    return providers.label(name)
