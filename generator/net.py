"""Network policy: who Easel talks to, how it says who it is, and which addresses it refuses.

One User-Agent and one verifying TLS context for every outbound call (providers and output
downloads). Output URLs are checked before they are fetched: only http(s), and no host that
resolves to a loopback, private, link-local, reserved or cloud-metadata address unless the
provider itself lives on such an address (as the test simulators do). `pinned()` then connects to
the address that was checked, not to whatever a second DNS lookup says.

A leaf above generator.errors: a refusal is a `Refused`, itself a DownloadError, so it reaches
the generation as it is.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl

import httpx

from generator.errors import DownloadError

USER_AGENT = "Easel/1.0 (+https://github.com/easel)"


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process. httpx builds a new one (loading the whole CA
    bundle, ~0.1 s of CPU) for every client otherwise, and a provider call or an output
    download makes a client per task: that was most of a short task's time."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class Refused(DownloadError):
    """A URL that must not be fetched (not retryable: asking again would be refused again)."""


class Unresolved(Refused):
    """The host name did not resolve (DNS may be back in a moment)."""

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


def _addresses(host: str) -> list[ipaddress._BaseAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        raise Unresolved(f"The image host {host!r} could not be resolved.") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)


def _unmapped(address: ipaddress._BaseAddress) -> ipaddress._BaseAddress:
    # ::ffff:169.254.169.254 reaches the same host as 169.254.169.254.
    # So do its 6to4 and NAT64 forms.
    return _embedded_v4(address) or address


# 6to4 and NAT64 addresses carry an IPv4 address that a gateway may reach for us.
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not global, not "private"


def _embedded_v4(address: ipaddress._BaseAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if any(address in net for net in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _embeds_internal_v4(address: ipaddress._BaseAddress) -> bool:
    """An IPv6 form of a private, shared or metadata IPv4 address: refused whatever
    `allow_private` says, since no provider is reached that way."""
    v4 = _embedded_v4(address)
    return v4 is not None and (_is_private(v4) or v4 in METADATA_ADDRESSES)


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
        or address in SHARED
        or _is_metadata(address)
    )


def host_is_private(host: str | None) -> bool:
    if not host:
        return False
    try:
        return any(_is_private(a) for a in _addresses(host))
    except Unresolved:
        return False


def check_url(url: httpx.URL, allow_private: bool) -> ipaddress._BaseAddress:
    """Refuse what must not be fetched; return the checked address to connect to."""
    if url.scheme not in ("http", "https"):
        raise Refused(f"Refused to download from a {url.scheme!r} URL.")
    if not url.host:
        raise Refused("Refused to download from a URL without a host.")
    addresses = _addresses(url.host)
    if any(_is_metadata(a) for a in addresses):
        # Cloud metadata endpoints are refused even for providers on private addresses.
        raise Refused(
            f"Refused to download the image from {url.host}: it is a cloud metadata address."
        )
    if any(_embeds_internal_v4(a) for a in addresses):
        raise Refused(
            f"Refused to download the image from {url.host}: it is a private or internal address"
            " (an IPv6 form of an internal IPv4 address)."
        )
    if not allow_private and any(_is_private(a) for a in addresses):
        raise Refused(
            f"Refused to download the image from {url.host}: it is a private or internal address."
        )
    return addresses[0]


def pinned(url: httpx.URL, address: ipaddress._BaseAddress) -> tuple[httpx.URL, dict, dict]:
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
