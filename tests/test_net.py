"""generator.net: the network policy, without any network."""

from __future__ import annotations

import httpx
import pytest

from generator import net


def test_private_and_public_hosts_are_told_apart():
    assert net.host_is_private("127.0.0.1") and net.host_is_private("[::1]")
    assert not net.host_is_private("8.8.8.8") and not net.host_is_private("")


@pytest.mark.parametrize(
    "url, words",
    [
        ("ftp://8.8.8.8/a.png", "'ftp' URL"),
        ("http://10.0.0.1/a.png", "private or internal address"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata address"),
    ],
)
def test_a_refused_url_is_final_and_says_why(url, words):
    with pytest.raises(net.Refused, match=words) as info:
        net.check_url(httpx.URL(url), allow_private=False)
    assert info.value.retryable is False


def test_a_pinned_url_connects_to_the_checked_address_under_its_own_name():
    url = httpx.URL("https://images.example.org:8443/a.png")
    target, headers, extensions = net.pinned(
        url, net.check_url(httpx.URL("https://8.8.8.8"), False)
    )
    assert str(target) == "https://8.8.8.8:8443/a.png"
    assert headers == {"Host": "images.example.org:8443"}
    assert extensions == {"sni_hostname": "images.example.org"}
