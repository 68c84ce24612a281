"""Provider credentials and base URLs, from the environment only (settings.EASEL_PROVIDERS).

They never reach a page, a log line or the admin (see generator.providers.base.provider_setting).
Read after config.settings has loaded the local .env, so the same variables apply.
"""

from __future__ import annotations

import os


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


EASEL_PROVIDERS = {
    "local": {},
    "meteron": {
        "api_key": env("METERON_API_KEY"),
        "base_url": env("METERON_BASE_URL", "https://app.meteron.ai"),
    },
    "scenario": {
        "api_key": env("SCENARIO_API_KEY"),
        "api_secret": env("SCENARIO_API_SECRET"),
        "base_url": env("SCENARIO_BASE_URL", "https://api.cloud.scenario.com/v1"),
    },
    "openai": {
        "api_key": env("OPENAI_API_KEY"),
        "base_url": env("OPENAI_BASE_URL", "https://api.openai.com"),
    },
    "airefinery": {
        "api_key": env("AIREFINERY_API_KEY"),
        "base_url": env("AIREFINERY_BASE_URL", "https://api.airefinery.accenture.com"),
        # The official SDK sends its version on every call; blank = the adapter's default.
        "sdk_version": env("AIREFINERY_SDK_VERSION"),
    },
    "artificialstudio": {
        "api_key": env("ARTIFICIAL_STUDIO_API_KEY"),
        "base_url": env("ARTIFICIAL_STUDIO_BASE_URL", "https://api.artificialstudio.ai"),
    },
    "replicate": {
        "api_key": env("REPLICATE_API_TOKEN"),
        "base_url": env("REPLICATE_BASE_URL", "https://api.replicate.com"),
        "webhook_secret": env("REPLICATE_WEBHOOK_SECRET"),
    },
}
