"""Issue #14 part B: input a stranger (or a provider) sends is a clear 4xx or a readable
failure, never a 500. Each test here was a 500 / an uncaught exception on the old code."""

from __future__ import annotations

import ipaddress
import json

import httpx
import pytest

from generator import imaging, net
from generator.downloads import download
from generator.errors import DownloadError

pytestmark = pytest.mark.django_db


def test_a_date_at_the_end_of_the_calendar_is_a_form_error_not_a_500(owner_client):
    response = owner_client.get("/gallery/", {"to": "9999-12-31"})
    assert response.status_code in (200, 400)
    assert b"Use a date between" in response.content


def test_the_same_date_filter_on_a_detail_page_is_not_a_500(owner_client, owner, make_generation):
    gen = make_generation(owner)
    response = owner_client.get(f"/gallery/{gen.public_id}/", {"to": "9999-12-31"})
    assert response.status_code < 500


@pytest.mark.parametrize(
    "path",
    [
        "/gallery/ab%00cd/",
        "/gallery/ab%00cd/delete/",
        "/gallery/ab%00cd/input/",
        "/gallery/ab%00cd/images/0/thumb/",
        "/g/ab%00cd/card/",
    ],
)
def test_a_nul_byte_in_a_url_id_is_a_404(owner_client, path):
    assert owner_client.get(path).status_code == 404


def test_a_deeply_nested_webhook_body_is_a_400(client):
    body = b"[" * 1024 + b"]" * 1024
    response = client.post("/webhooks/artificialstudio/", body, content_type="application/json")
    assert response.status_code == 400


def test_a_webhook_id_with_a_nul_byte_is_a_4xx(client):
    body = json.dumps({"id": "job\u0000x", "status": "succeeded"})
    response = client.post("/webhooks/artificialstudio/", body, content_type="application/json")
    assert 400 <= response.status_code < 500


def test_deeply_nested_json_output_is_not_unwrapped_and_does_not_raise():
    assert imaging.unwrap_json_output(b"[" * 5000 + b"]" * 5000) is None
    deep = b'{"a":' * 500 + b'"data:image/png;base64,iVBORw0KGgo="' + b"}" * 500
    assert imaging.unwrap_json_output(deep) == imaging.decode_data_uri(
        "data:image/png;base64,iVBORw0KGgo="
    )


@pytest.mark.parametrize("url", ["http://[::1", "http://"])
def test_an_output_url_that_does_not_parse_is_a_final_download_error(url):
    with pytest.raises(DownloadError) as info:
        download(url)
    assert not info.value.retryable


@pytest.mark.parametrize(
    "host",
    [
        "100.64.0.1",
        "100.127.255.254",
        "::ffff:10.0.0.1",
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::c0a8:101",  # NAT64 of 192.168.1.1
    ],
)
def test_the_ssrf_guard_refuses_shared_and_embedded_internal_addresses(host):
    url = httpx.URL(f"http://[{host}]/x.png" if ":" in host else f"http://{host}/x.png")
    with pytest.raises(net.Refused):
        net.check_url(url, allow_private=False)
    if ":" in host:  # the embedded forms are refused even for a provider on a private address
        with pytest.raises(net.Refused):
            net.check_url(url, allow_private=True)


def test_the_ssrf_guard_still_allows_a_public_address():
    assert net.check_url(httpx.URL("http://93.184.216.34/x.png"), False) == ipaddress.ip_address(
        "93.184.216.34"
    )


def _png_16bit_grey_with_trns() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + b"\x12\x34\xab\xcd" * 2 for _ in range(4))
    header = struct.pack(">IIBBBBB", 4, 4, 16, 0, 0, 0, 0)  # 16-bit grayscale (PNG spec 11.2.2)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tRNS", b"\x12\x34")  # one transparent grey level (PNG spec 11.3.2.1)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_a_16_bit_grey_png_with_trns_is_accepted_as_an_input_photo():
    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    upload = SimpleUploadedFile("grey.png", _png_16bit_grey_with_trns(), "image/png")
    cleaned = imaging.clean_input_image(upload)
    with Image.open(cleaned) as img:
        assert (img.format, img.size, img.mode) == ("PNG", (4, 4), "RGBA")
