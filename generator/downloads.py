"""Safe download of provider outputs.

Streamed with a size cap; redirects followed by hand so every hop is checked against the
network policy in generator.net (only http(s); no loopback, private, link-local, reserved or
metadata address unless the provider itself lives on such an address).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from django.conf import settings

from generator.errors import DownloadError
from generator.net import USER_AGENT, check_url, pinned, ssl_context

__all__ = ["MAX_REDIRECTS", "DownloadError", "Downloaded", "download"]

MAX_REDIRECTS = 5


@dataclass
class Downloaded:
    data: bytes
    content_type: str
    url: str


def download(
    url: str,
    *,
    allow_private: bool = False,
    max_bytes: int | None = None,
    headers: dict[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Downloaded:
    max_bytes = max_bytes or settings.EASEL_MAX_DOWNLOAD_BYTES
    try:
        current = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        # Final at once: asking again will not make the provider's URL parse.
        raise DownloadError("The provider sent an image URL that does not parse.") from None
    timeout = httpx.Timeout(settings.EASEL_PROVIDER_TIMEOUT, connect=10.0)
    with httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        transport=transport,
        verify=ssl_context(),
    ) as client:
        origin = (current.scheme, current.host, current.port)
        for _ in range(MAX_REDIRECTS + 1):
            address = check_url(current, allow_private)  # a refusal is a DownloadError
            target, host_header, extensions = pinned(current, address)
            if headers and (current.scheme, current.host, current.port) == origin:
                # A provider's token goes to the URL's own origin only, never past a redirect
                # that leaves it.
                host_header = {**headers, **host_header}
            try:
                with client.stream(
                    "GET", target, headers=host_header, extensions=extensions
                ) as response:
                    if response.is_redirect:
                        location = response.headers.get("Location", "")
                        if not location:
                            raise DownloadError("The image URL redirected without a Location.")
                        try:
                            current = current.join(location)
                        except (httpx.InvalidURL, ValueError):
                            raise DownloadError(
                                "The image URL redirected to a URL that does not parse."
                            ) from None
                        continue
                    if response.status_code >= 400:
                        retryable = response.status_code >= 500 or response.status_code == 429
                        raise DownloadError(
                            f"The image URL answered {response.status_code}"
                            + (
                                " (it may have expired)."
                                if response.status_code in (403, 404, 410)
                                else "."
                            ),
                            retryable=retryable,
                        )
                    declared = response.headers.get("Content-Length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise DownloadError(_too_big(max_bytes))
                    chunks, total = [], 0
                    for chunk in response.iter_bytes(64 * 1024):
                        total += len(chunk)
                        if total > max_bytes:
                            raise DownloadError(_too_big(max_bytes))
                        chunks.append(chunk)
                    return Downloaded(
                        data=b"".join(chunks),
                        content_type=response.headers.get("Content-Type", "").split(";")[0].strip(),
                        url=str(current),
                    )
            except httpx.TimeoutException:
                raise DownloadError("Downloading the image timed out.", retryable=True) from None
            except httpx.TransportError as exc:
                raise DownloadError(
                    f"Downloading the image failed ({type(exc).__name__}).", retryable=True
                ) from None
    raise DownloadError("The image URL redirected too many times.")


def _too_big(max_bytes: int) -> str:
    if max_bytes >= 1024 * 1024:
        limit = f"{max_bytes / (1024 * 1024):g} MB"
    else:
        limit = f"{max_bytes} bytes"
    return f"The image is larger than the {limit} limit (EASEL_MAX_DOWNLOAD_BYTES)."
