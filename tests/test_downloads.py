"""Safe download of provider outputs: every bad output ends the generation failed, stores nothing.

Test equipment here: `BadOutputServer`, a loopback HTTP server that serves good and bad
"provider outputs", and `UrlOutputsProvider`, a provider registered only inside this module
whose outputs are URLs (as Replicate's and OpenAI's are). Like the simulators, it lives on
loopback, so its outputs may come from loopback — but never from a metadata address.
"""

from __future__ import annotations

import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from generator import providers
from generator.downloads import DownloadError, download
from generator.models import AIModel, Generation, OutputImage
from generator.outputs import store_outputs
from generator.providers.base import Done, ImageOutput, Provider
from generator.tasks import run_generation
from tests.simulators.base import png_bytes

pytestmark = pytest.mark.django_db
Q = Generation.Status
MB = 1024 * 1024


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 100_000) -> bytes:
    """A ~100-byte PNG that claims side×side pixels: a decompression bomb."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + png_chunk(b"IEND", b"")
    )


GOOD = png_bytes(64, 48)


class BadOutputServer:
    """Loopback HTTP server for provider outputs, good and bad (test equipment)."""

    def __init__(self):
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.hits.append(self.path)
                route = getattr(outer, "route_" + self.path.strip("/").replace("-", "_"), None)
                if route is None:
                    return self.answer(404, b"not found", "text/plain")
                route(self)

            def answer(self, status, body, content_type, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    # --- routes ---------------------------------------------------------------------------

    def route_good(self, h):
        h.answer(200, GOOD, "image/png")

    def route_big(self, h):
        # 60 MB, declared honestly in Content-Length.
        h.answer(200, b"\x00" * (60 * MB), "image/png")

    def route_big_chunked(self, h):
        # 60 MB with no Content-Length: only the streaming cap can stop it.
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        chunk = b"\x00" * MB
        try:
            for _ in range(60):
                h.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route_bomb(self, h):
        h.answer(200, bomb_png(), "image/png")

    def route_html(self, h):
        h.answer(200, b"<html><body>Access denied</body></html>", "text/html; charset=utf-8")

    def route_truncated(self, h):
        h.answer(200, png_bytes(256, 256)[:200], "image/png")

    def route_gif(self, h):
        import io

        from PIL import Image

        out = io.BytesIO()
        Image.new("RGB", (8, 8)).save(out, format="GIF")
        h.answer(200, out.getvalue(), "image/gif")

    def route_to_metadata(self, h):
        h.answer(302, b"", "text/plain", {"Location": "http://169.254.169.254/latest/meta-data/"})

    def route_to_ftp(self, h):
        h.answer(302, b"", "text/plain", {"Location": "ftp://127.0.0.1/image.png"})

    def route_to_good(self, h):
        h.answer(302, b"", "text/plain", {"Location": "/good"})

    def route_loop(self, h):
        h.answer(302, b"", "text/plain", {"Location": "/loop"})

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class UrlOutputsProvider(Provider):
    """Test equipment: finishes at once with the URLs listed in the model's params."""

    name = "test-url-outputs"
    label = "URL outputs (test equipment)"

    def submit(self, gen):
        return Done(images=[ImageOutput(url=url) for url in gen.model.params["urls"]])

    def download_allows_private(self) -> bool:
        return True  # it "lives" on loopback, like the provider simulators


@pytest.fixture
def outputs():
    with BadOutputServer() as server:
        yield server


@pytest.fixture
def url_provider():
    providers.register(UrlOutputsProvider)
    yield UrlOutputsProvider
    providers.unregister(UrlOutputsProvider.name)


@pytest.fixture
def run_with_outputs(url_provider, owner):
    def run(*urls: str) -> Generation:
        model, _ = AIModel.objects.update_or_create(
            slug="test-url-outputs",
            defaults={
                "name": "URL outputs",
                "provider": UrlOutputsProvider.name,
                "remote_id": "x",
                "params": {"urls": list(urls)},
                "options": {"max_images": 4},
            },
        )
        gen = Generation.objects.create(
            user=owner, model=model, provider=model.provider, prompt="a fox", status=Q.QUEUED
        )
        run_generation(gen.pk)
        gen.refresh_from_db()
        return gen

    return run


def stored_files() -> list[Path]:
    return [p for p in Path(django_settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def assert_failed_and_nothing_stored(gen: Generation, reason: str) -> None:
    assert gen.status == Q.FAILED
    assert reason in gen.error
    assert not OutputImage.objects.filter(generation=gen).exists()
    assert stored_files() == []


def test_a_good_url_output_is_stored(outputs, run_with_outputs):
    gen = run_with_outputs(f"{outputs.url}/to-good")
    assert gen.status == Q.COMPLETED, gen.error
    image = gen.images.get()
    assert (image.width, image.height, image.content_type) == (64, 48, "image/png")
    assert image.bytes == len(GOOD) and image.thumbnail_bytes > 0
    assert image.provider_url == f"{outputs.url}/to-good"
    assert len(stored_files()) == 2


@pytest.mark.parametrize("path", ["big", "big-chunked"])
def test_a_60_mb_output_fails_the_generation_and_stores_nothing(outputs, run_with_outputs, path):
    gen = run_with_outputs(f"{outputs.url}/{path}")
    assert_failed_and_nothing_stored(gen, "larger than the 50 MB limit")


def test_a_decompression_bomb_fails_the_generation_and_stores_nothing(outputs, run_with_outputs):
    gen = run_with_outputs(f"{outputs.url}/bomb")
    assert_failed_and_nothing_stored(gen, "decompression bomb refused")


def test_a_bomb_just_over_the_pixel_limit_is_refused_too(settings, outputs, run_with_outputs):
    settings.EASEL_MAX_IMAGE_PIXELS = 64 * 48 - 1  # GOOD is 64×48: one pixel too many
    gen = run_with_outputs(f"{outputs.url}/good")
    assert_failed_and_nothing_stored(gen, "decompression bomb refused")


def test_a_non_image_fails_the_generation_and_stores_nothing(outputs, run_with_outputs):
    gen = run_with_outputs(f"{outputs.url}/html")
    assert_failed_and_nothing_stored(gen, "not an image (it was text/html)")


@pytest.mark.parametrize(
    "path,reason",
    [("truncated", "damaged image"), ("gif", "GIF image; PNG, JPEG or WebP expected")],
)
def test_damaged_or_unexpected_formats_fail_readably(outputs, run_with_outputs, path, reason):
    gen = run_with_outputs(f"{outputs.url}/{path}")
    assert_failed_and_nothing_stored(gen, reason)


def test_a_url_to_the_metadata_address_fails_and_is_never_requested(run_with_outputs):
    gen = run_with_outputs("http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    assert_failed_and_nothing_stored(gen, "169.254.169.254: it is a cloud metadata address")


def test_a_redirect_to_the_metadata_address_is_refused(outputs, run_with_outputs):
    gen = run_with_outputs(f"{outputs.url}/to-metadata")
    assert_failed_and_nothing_stored(gen, "cloud metadata address")
    assert outputs.hits == ["/to-metadata"]


def test_one_bad_output_among_good_ones_stores_none_of_them(outputs, run_with_outputs):
    gen = run_with_outputs(f"{outputs.url}/good", f"{outputs.url}/html")
    assert_failed_and_nothing_stored(gen, "not an image")


def test_redirects_are_followed_only_to_http_and_not_forever(outputs):
    with pytest.raises(DownloadError, match="'ftp' URL"):
        download(f"{outputs.url}/to-ftp", allow_private=True)
    with pytest.raises(DownloadError, match="redirected too many times"):
        download(f"{outputs.url}/loop", allow_private=True)
    assert download(f"{outputs.url}/to-good", allow_private=True).data == GOOD


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x.png",
        "http://10.0.0.8/x.png",
        "http://192.168.1.1/x.png",
        "http://[::1]/x.png",
        "http://[::ffff:127.0.0.1]/x.png",
        "http://0.0.0.0/x.png",
        "http://localhost/x.png",
    ],
)
def test_private_addresses_are_refused_for_a_provider_on_the_internet(url):
    with pytest.raises(DownloadError, match="private or internal address"):
        download(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/", "http://[::ffff:169.254.169.254]/", "http://[fd00:ec2::254]/"],
)
def test_metadata_addresses_are_refused_even_for_a_provider_on_loopback(url):
    with pytest.raises(DownloadError, match="cloud metadata address"):
        download(url, allow_private=True)


def test_a_host_name_is_connected_to_at_the_address_that_was_checked(outputs):
    # "localhost" resolves to loopback; the request goes to the checked address with the
    # original Host header (DNS-rebinding defence) and still gets its answer.
    port = outputs.server.server_address[1]
    got = download(f"http://localhost:{port}/good", allow_private=True)
    assert got.data == GOOD and got.content_type == "image/png"


def test_a_provider_on_the_internet_may_not_point_at_the_simulators(outputs, owner, local_model):
    class PublicProvider(UrlOutputsProvider):
        def download_allows_private(self) -> bool:
            return False

    gen = Generation.objects.create(
        user=owner, model=local_model, provider="local", prompt="x", status=Q.RUNNING
    )
    with pytest.raises(DownloadError, match="private or internal address"):
        store_outputs(gen, [ImageOutput(url=f"{outputs.url}/good")], PublicProvider())
    assert outputs.hits == [] and stored_files() == []


def test_the_download_cap_is_configurable(settings, outputs):
    settings.EASEL_MAX_DOWNLOAD_BYTES = 100
    with pytest.raises(DownloadError, match="larger than"):
        download(f"{outputs.url}/good", allow_private=True)


def test_an_http_error_from_the_output_url_is_readable(outputs, run_with_outputs):
    gen = run_with_outputs(f"{outputs.url}/expired")
    assert_failed_and_nothing_stored(gen, "answered 404 (it may have expired)")
