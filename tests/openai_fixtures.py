"""Fixtures of the OpenAI-style simulators (test equipment), shared by the OpenAI test files:
`openai_sim` (OpenAI), `air_sim` (AI Refinery) and `openai_configured` (Easel pointed at both); loaded for every test file as a plugin (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.simulators.openai import OpenAISimulator


@pytest.fixture
def openai_sim():
    with OpenAISimulator() as server:
        yield server


@pytest.fixture
def air_sim():
    with OpenAISimulator(flavour="airefinery", api_key="air-sim-key") as server:
        yield server


@pytest.fixture
def openai_configured(settings, openai_sim, air_sim):
    settings.EASEL_PROVIDERS = {
        **settings.EASEL_PROVIDERS,
        "openai": {"api_key": openai_sim.api_key, "base_url": openai_sim.url},
        "airefinery": {"api_key": air_sim.api_key, "base_url": air_sim.url},
    }
    settings.EASEL_PROVIDER_TIMEOUT = 1.0  # the poll timeout; a synchronous submit waits longer
    return settings
