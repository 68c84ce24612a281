"""One error tree for everything that can make a generation fail.

`GenerationError(message, retryable=..., retry_after=...)` is the root: `message` is shown to the
user as the generation's reason, `retryable` says whether trying again later may help, and
`retry_after` (seconds) is the provider's own hint. The task retries only what is retryable.

    GenerationError
    ├── ProviderError            a call to a provider went wrong
    │   ├── LimitReached         the user's limit at the provider is used up
    │   ├── OutcomeUnknown       the request may have reached the provider; never resent
    │   └── NotConfigured        the provider has no credentials on this server
    ├── DownloadError            an output could not be fetched safely
    │   └── InvalidImage         what was fetched is not an acceptable image
    └── StorageError             Easel's own storage failed

Easel's own storage and image errors are not ProviderErrors: the provider did nothing wrong.
A leaf: imports only the standard library.
"""

from __future__ import annotations


class GenerationError(Exception):
    """A generation could not go on. `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class ProviderError(GenerationError):
    """A call to a provider went wrong."""


class LimitReached(ProviderError):
    """The provider refused because the user's limit there is used up."""

    def __init__(self, message: str = "Limit reached at the provider."):
        super().__init__(message, retryable=False)


class OutcomeUnknown(ProviderError):
    """The request may have reached the provider (a read timeout, a connection dropped after the
    body was sent, a 2xx whose body cannot be read): it may have run and been billed, so it is
    never sent again automatically. `message` is the reason shown if it cannot be reconciled."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False)


class NotConfigured(ProviderError):
    def __init__(self, provider: str):
        super().__init__(
            f"The {provider} provider is not configured on this server.", retryable=False
        )


class DownloadError(GenerationError):
    """A provider's output could not be downloaded (refused URL, HTTP error, too big …)."""


class InvalidImage(DownloadError):
    """The output is not an image Easel accepts (not PNG/JPEG/WebP, damaged, a bomb)."""


class StorageError(GenerationError):
    """Easel's own storage failed while saving outputs (the generation fails readably)."""
