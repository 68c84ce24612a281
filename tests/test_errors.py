"""The one error tree (generator.errors) and its old import paths."""

from __future__ import annotations

import pytest

from generator import errors


def test_every_error_a_generation_can_fail_with_shares_one_root_with_its_retry_policy():
    exc = errors.ProviderError("slow", retryable=True, retry_after=2.0)
    assert isinstance(exc, errors.GenerationError)
    assert (exc.message, exc.retryable, exc.retry_after) == ("slow", True, 2.0)
    assert errors.DownloadError("gone").retryable is False


@pytest.mark.parametrize("cls", [errors.DownloadError, errors.InvalidImage, errors.StorageError])
def test_easels_own_download_image_and_storage_errors_are_not_provider_errors(cls):
    assert issubclass(cls, errors.GenerationError)
    assert not issubclass(cls, errors.ProviderError)


def test_the_old_import_paths_name_the_same_classes():
    from generator.downloads import DownloadError
    from generator.providers.base import GenerationError, LimitReached, NotConfigured, ProviderError

    assert DownloadError is errors.DownloadError
    assert (GenerationError, ProviderError) == (errors.GenerationError, errors.ProviderError)
    assert (
        LimitReached().message == "Limit reached at the provider." and not LimitReached().retryable
    )
    assert (
        NotConfigured("openai").message == "The openai provider is not configured on this server."
    )
    assert issubclass(LimitReached, ProviderError) and issubclass(NotConfigured, ProviderError)
