"""The provider_label template filter."""

from __future__ import annotations

from django.template import Context, Template


def render(name: str) -> str:
    return Template("{% load providers %}{{ name|provider_label }}").render(Context({"name": name}))


def test_a_provider_name_renders_as_its_label_and_an_unknown_one_as_itself():
    assert render("openai") == "OpenAI"
    assert render("local") == "Local renderer (offline)"
    assert render("gone-provider") == "gone-provider"
