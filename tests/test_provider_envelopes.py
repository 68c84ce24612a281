"""Each provider's error envelope, read by HttpProvider.error_message (no network)."""

from __future__ import annotations

import httpx
import pytest

from generator.providers import get_provider

CASES = [
    ("meteron", {"error": {"message": "bad model"}}, "bad model"),
    ("meteron", {"message": "quota exceeded"}, "quota exceeded"),
    ("meteron", ["odd"], "['odd']"),
    ("meteron", "not json at all", "not json at all"),
    (
        "openai",
        {"error": {"message": "no", "code": "content_policy_violation"}},
        "content policy — no",
    ),
    ("openai", {"error": {"message": "too big", "param": "size"}}, "too big (field: size)"),
    ("airefinery", {"error": "plain words"}, "plain words"),
    (
        "replicate",
        {
            "title": "Invalid",
            "detail": "Bad input",
            "invalid_fields": [{"field": "w", "description": "x"}],
        },
        "Bad input (w: x)",
    ),
    ("replicate", {"title": "Not found"}, "Not found"),
    (
        "artificialstudio",
        {"message": "Validation failed", "errors": [{"field": "prompt", "message": "Required"}]},
        "Validation failed (prompt: Required)",
    ),
    (
        "scenario",
        {
            "error": "Forbidden",
            "message": "Limit hit",
            "details": {"actionName": "gen", "actionLimit": 5},
        },
        "Limit hit (gen, limit 5)",
    ),
    ("scenario", {"error": "Not Found"}, "Not Found"),
]


@pytest.mark.parametrize("provider, body, words", CASES)
def test_the_providers_own_words_are_read_from_its_envelope(provider, body, words):
    if isinstance(body, str):
        response = httpx.Response(400, text=body)
    else:
        response = httpx.Response(400, json=body)
    assert words in get_provider(provider).error_message(response)
