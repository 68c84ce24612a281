"""Easel's one error tree. Every error carries a message a person can read and whether trying
again may help (`retryable`, with the provider's `retry_after` where it gave one).

GenerationError
├── ProviderError          a provider said no or could not be reached
│   ├── LimitReached       … because the user's limit there is used up
│   └── NotConfigured      … because this server has no credentials for it
├── DownloadError          an output could not be fetched
│   └── InvalidImage       … or is not an image Easel keeps
└── StorageError           Easel's own storage failed

A leaf: imports nothing from Easel.
"""

from __future__ import annotations


class GenerationError(Exception):
    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class ProviderError(GenerationError):
    """A call to a provider went wrong. `retryable` says whether trying again may help."""


class LimitReached(ProviderError):
    """The provider refused because the user's limit there is used up."""

    def __init__(self, message: str = "Limit reached at the provider."):
        super().__init__(message, retryable=False)


class NotConfigured(ProviderError):
    def __init__(self, provider: str):
        super().__init__(
            f"The {provider} provider is not configured on this server.", retryable=False
        )


class DownloadError(GenerationError):
    """An output could not be downloaded (refused address, too big, HTTP error…)."""


class InvalidImage(DownloadError):
    """An output that is not an image Easel keeps (format, size, damage)."""


class StorageError(GenerationError):
    """Easel's own storage failed while saving outputs (the generation fails readably)."""
