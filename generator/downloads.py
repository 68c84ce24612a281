"""Safe download of provider outputs.

Streamed with a size cap; only http(s), redirects followed by hand so every hop is checked;
hosts that resolve to loopback, private, link-local, reserved or metadata addresses are
refused unless the provider itself lives on such an address (as the test simulators do).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx
from django.conf import settings

from generator.errors import DownloadError
from generator.providers.base import USER_AGENT, ssl_context

MAX_REDIRECTS = 5


@dataclass
class Downloaded:
    data: bytes
    content_type: str
    url: str


def _addresses(host: str) -> list[ipaddress._BaseAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        raise DownloadError(
            f"The image host {host!r} could not be resolved.", retryable=True
        ) from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)


def _unmapped(address: ipaddress._BaseAddress) -> ipaddress._BaseAddress:
    # ::ffff:169.254.169.254 reaches the same host as 169.254.169.254.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_metadata(address: ipaddress._BaseAddress) -> bool:
    return _unmapped(address) in METADATA_ADDRESSES


def _is_private(address: ipaddress._BaseAddress) -> bool:
    address = _unmapped(address)
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or _is_metadata(address)
    )


def host_is_private(host: str | None) -> bool:
    if not host:
        return False
    try:
        return any(_is_private(a) for a in _addresses(host))
    except DownloadError:
        return False


def check_url(url: httpx.URL, allow_private: bool) -> ipaddress._BaseAddress:
    """Refuse what must not be fetched; return the checked address to connect to."""
    if url.scheme not in ("http", "https"):
        raise DownloadError(f"Refused to download from a {url.scheme!r} URL.")
    if not url.host:
        raise DownloadError("Refused to download from a URL without a host.")
    addresses = _addresses(url.host)
    if any(_is_metadata(a) for a in addresses):
        # Cloud metadata endpoints are refused even for providers on private addresses.
        raise DownloadError(
            f"Refused to download the image from {url.host}: it is a cloud metadata address."
        )
    if not allow_private and any(_is_private(a) for a in addresses):
        raise DownloadError(
            f"Refused to download the image from {url.host}: it is a private or internal address."
        )
    return addresses[0]


def _pinned(url: httpx.URL, address: ipaddress._BaseAddress) -> tuple[httpx.URL, dict, dict]:
    """Connect to the address that was checked, not to whatever a second DNS lookup says.

    The Host header and the TLS server name stay the original host name, so virtual hosting
    and certificate checks work as before (DNS-rebinding defence).
    """
    try:
        ipaddress.ip_address(url.host.strip("[]"))
        return url, {}, {}  # already a literal address
    except ValueError:
        pass
    host = f"[{address}]" if address.version == 6 else str(address)
    headers = {"Host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return url.copy_with(host=host.strip("[]")), headers, extensions


def download(
    url: str,
    *,
    allow_private: bool = False,
    max_bytes: int | None = None,
    headers: dict[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Downloaded:
    max_bytes = max_bytes or settings.EASEL_MAX_DOWNLOAD_BYTES
    current = httpx.URL(url)
    timeout = httpx.Timeout(settings.EASEL_PROVIDER_TIMEOUT, connect=10.0)
    with httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        transport=transport,
        verify=ssl_context(),
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            address = check_url(current, allow_private)
            target, host_header, extensions = _pinned(current, address)
            try:
                with client.stream(
                    "GET", target, headers=host_header, extensions=extensions
                ) as response:
                    if response.is_redirect:
                        location = response.headers.get("Location", "")
                        if not location:
                            raise DownloadError("The image URL redirected without a Location.")
                        current = current.join(location)
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
