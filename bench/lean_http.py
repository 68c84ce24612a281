"""A minimal HTTP/1.1 client on asyncio streams, for benches whose client shares the machine with
the server it measures (bench/live_wait.py).

One request per connection (`Connection: close`), the answer read to the end. httpx's async
client with 200 connections open cost about 6 ms of CPU per request going out and 10 ms per
answer coming back on this 2-core machine (bench/live_wait.py, /proc sampling, 2026-12-03):
a fifth of the machine during the burst, taken from the server being measured. This one costs a
fraction of a millisecond; a real client is on another machine.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return jsonlib.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _dechunk(body: bytes) -> bytes:
    out, rest = bytearray(), body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return bytes(out)


async def request(
    base: str, method: str, path: str, headers: dict[str, str] | None = None, json=None
) -> Answer:
    url = urlsplit(base)
    body = b"" if json is None else jsonlib.dumps(json).encode()
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {url.netloc}",
        "Connection: close",
        f"Content-Length: {len(body)}",
    ]
    if json is not None:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        raw = await reader.read(-1)  # to the end: the server closes after answering
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    if answer_headers.get("transfer-encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    return Answer(int(status_line.split()[1]), answer_headers, payload)
