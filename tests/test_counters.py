"""generator/counters.py: one table of counters, keys and lifetimes, and one rule for bumps."""

from __future__ import annotations

import ast
import os
import uuid
from pathlib import Path
from typing import TypedDict

import pytest
from django.core.cache import caches

from gallery.forms import model_directory
from generator import counters
from generator.models import AIModel
from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent
# The one rule: counters move only in Generation's transition methods and in signals.py.
# bench/ and config/bench_urls.py move them on purpose (a page "right after a change").
MAY_BUMP = {"generator/models/generation.py", "generator/signals.py", "generator/counters.py"}


def test_a_counter_bumped_on_redis_reads_back_as_an_int(settings):
    url = os.environ.get("REDIS_URL", "")
    require(bool(url), "REDIS_URL is not set")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        }
    }
    cache = caches["default"]
    counters.bump_key("some-counter")
    first = cache.get("some-counter")
    assert isinstance(first, int)
    counters.bump_key("some-counter")
    assert cache.get("some-counter") > first  # set under Django's own key function

    computed = []
    read = lambda: counters.cached("derived", ["some-counter"], lambda: computed.append(1))  # noqa: E731
    read(), read()
    assert len(computed) == 1
    counters.bump_key("some-counter")
    read()
    assert len(computed) == 2
    cache.delete_many(["some-counter", "derived"])


@pytest.mark.django_db
def test_saving_or_deleting_a_model_renews_the_model_directory(local_model):
    assert model_directory()["local-sketch"].name == local_model.name
    local_model.name = "Sketch Pro"
    local_model.save()
    assert model_directory()["local-sketch"].name == "Sketch Pro"
    AIModel.objects.filter(pk=local_model.pk).update(name="Unseen")  # no signal: kept
    assert model_directory()["local-sketch"].name == "Sketch Pro"
    local_model.generations.all().delete()
    local_model.delete()
    assert "local-sketch" not in model_directory()


def _bump_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id).startswith(
            "bump_"
        )
    ]


def test_counters_are_bumped_only_by_the_models_transitions_and_the_signal_receivers():
    offenders = []
    for app in ("accounts", "gallery", "generator", "config"):
        for path in sorted((ROOT / app).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in MAY_BUMP or name == "config/bench_urls.py" or "/migrations/" in name:
                continue
            offenders += [f"{name}:{line}" for line in _bump_calls(path)]
    assert offenders == []


def test_a_cached_shape_gets_a_new_version_when_a_field_is_added_or_retyped():
    class Page(TypedDict):
        html: str

    class Grown(TypedDict):
        html: str
        ids: list[int]

    class Retyped(TypedDict):
        html: bytes

    Grown.__qualname__ = Retyped.__qualname__ = Page.__qualname__
    versions = {counters.shape_version(t) for t in (Page, Grown, Retyped)}
    assert len(versions) == 3
    assert counters.shape_version(Page) == counters.shape_version(Page)
