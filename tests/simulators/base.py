"""A small threaded HTTP server on 127.0.0.1 with routing, recording and fault switches.

Usage:
    class MySim(Simulator):
        def routes(self):
            return [("POST", r"/v1/things", self.create), ("GET", r"/v1/things/(?P<id>[^/]+)", self.get)]

    with MySim() as sim:           # starts on an ephemeral port
        sim.url                    # "http://127.0.0.1:PORT"
        sim.faults.status = 500    # next requests answer 500 (see Faults)
        sim.requests               # every request received (method, path, headers, json)
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    match: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: bytes | str | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), self.content_type or "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        return self.body or b"", self.content_type or "application/octet-stream"


@dataclass
class Faults:
    """Switches a test flips. `times` limits how many requests a fault hits (None = all)."""

    latency: float = 0.0  # seconds added before every answer
    status: int | None = None  # answer this status (500, 503, 429 …) instead of the route
    retry_after: str | None = None  # Retry-After header with a 429
    hang: float = 0.0  # sleep this long before answering (for client timeouts)
    malformed_json: bool = False  # answer 200 with a body that is not JSON
    reset: bool = False  # close the connection without an answer
    times: int | None = None  # how many requests the fault applies to
    only: str | None = None  # regex: apply only to paths matching it

    def set(self, **switches) -> None:
        """Flip several switches at once, e.g. `sim.faults.set(status=503, times=1)`."""
        for name, value in switches.items():
            if not hasattr(self, name):
                raise AttributeError(f"no fault switch {name!r}")
            setattr(self, name, value)

    def applies(self, path: str) -> bool:
        if self.only and not re.search(self.only, path):
            return False
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True

    @property
    def active(self) -> bool:
        return bool(self.status or self.hang or self.malformed_json or self.reset)


def png_bytes(width: int = 64, height: int = 64, colour=(200, 80, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


class Simulator:
    name = "simulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.faults = Faults()
        self.requests: list[Request] = []
        self.lock = threading.RLock()
        self._routes = [(m, re.compile(f"^{p}$"), h) for m, p, h in self.routes()]
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                sim._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- subclass API ------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Callable[[Request], Response]]]:
        return []

    def authorized(self, request: Request) -> bool:
        return True

    def unauthorized(self, request: Request) -> Response:
        return Response(401, {"error": "unauthorized"})

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Simulator:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def received(self, method: str | None = None, path_regex: str | None = None) -> list[Request]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and (path_regex is None or re.search(path_regex, r.path))
            ]

    # --- plumbing ------------------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Request(
            method=handler.command,
            path=split.path,
            query={k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        with self.lock:
            self.requests.append(request)
            fault = self.faults.active and self.faults.applies(request.path)
            latency = self.faults.latency
        if latency:
            time.sleep(latency)
        if fault:
            f = self.faults
            if f.hang:
                time.sleep(f.hang)
            if f.reset:
                handler.close_connection = True
                try:
                    handler.connection.shutdown(2)
                except OSError:
                    pass
                return
            if f.malformed_json:
                return self._send(
                    handler, Response(200, "{not json", content_type="application/json")
                )
            if f.status:
                headers = {"Retry-After": f.retry_after} if f.retry_after else {}
                return self._send(
                    handler,
                    Response(f.status, {"error": {"message": f"simulated {f.status}"}}, headers),
                )
        for method, pattern, route in self._routes:
            m = pattern.match(request.path)
            if m and method == request.method:
                request.match = m.groupdict()
                if not self.authorized(request):
                    return self._send(handler, self.unauthorized(request))
                try:
                    response = route(request)
                except Exception as exc:  # a simulator bug shows as a 500, like a real server
                    response = Response(500, {"error": f"simulator error: {exc!r}"})
                return self._send(handler, response)
        self._send(handler, Response(404, {"error": "not found"}))

    def _send(self, handler: BaseHTTPRequestHandler, response: Response) -> None:
        data, content_type = response.encode()
        try:
            handler.send_response(response.status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            for key, value in response.headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
