"""The embedded broker (kombu's filesystem transport) never hands a reader half a message
(issue 14): the worker died on a JSONDecodeError once in ~600 submissions.

A writer thread puts large messages while a reader polls the queue folder the way
`filesystem.Channel._get` does (list, then read any `*.<queue>.msg`): every file a reader can
see must already be whole JSON. Run against kombu's own channel it finds torn files (so the
test can fail); against config.kombu_fs it finds none. And a whole round trip through the
channel keeps every message.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from kombu import Connection
from kombu.transport import filesystem

from config import kombu_fs
from tests.procs import ROOT

QUEUE = "celery"


def folders(tmp_path) -> dict:
    for sub in ("queue", "processed", "control"):
        (tmp_path / sub).mkdir()
    return {
        "data_folder_in": str(tmp_path / "queue"),
        "data_folder_out": str(tmp_path / "queue"),
        "processed_folder": str(tmp_path / "processed"),
        "control_folder": str(tmp_path / "control"),
        "store_processed": False,
    }


def torn_reads(tmp_path, transport, messages: int = 40) -> int:
    options = folders(tmp_path)
    payload = {"body": "x" * 2_000_000}  # a big body widens the window between open and write
    seen_torn = 0
    done = threading.Event()
    with Connection(transport=transport, transport_options=options) as conn:
        channel = conn.channel()

        def write():
            for _ in range(messages):
                channel._put(QUEUE, payload)
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        queue_dir = options["data_folder_in"]
        while not done.is_set() or os.listdir(queue_dir):
            for name in sorted(os.listdir(queue_dir)):
                if name.partition(".")[2] != f"{QUEUE}.msg":
                    continue
                path = os.path.join(queue_dir, name)
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                    os.remove(path)
                except FileNotFoundError:
                    continue
                try:
                    json.loads(data)
                except ValueError:
                    seen_torn += 1
        writer.join()
    return seen_torn


@pytest.mark.parametrize("attempt", range(3))
def test_a_reader_never_sees_half_a_message(tmp_path, attempt):
    assert torn_reads(tmp_path, kombu_fs.Transport) == 0


def test_kombus_own_channel_does_hand_out_torn_messages(tmp_path):
    """The reason for config/kombu_fs.py: the same reader sees torn files from the stock
    channel (a race, so several rounds are allowed to find one)."""
    found = 0
    for n in range(5):
        (tmp_path / str(n)).mkdir()
        found += torn_reads(tmp_path / str(n), filesystem.Transport)
    assert found > 0


def test_every_message_makes_the_round_trip(tmp_path):
    options = folders(tmp_path)
    with Connection(transport=kombu_fs.Transport, transport_options=options) as conn:
        channel = conn.channel()
        for n in range(200):
            channel._put(QUEUE, {"n": n})
        got = []
        while True:
            try:
                got.append(channel._get(QUEUE)["n"])
            except Exception:  # Empty
                break
    assert sorted(got) == list(range(200))


def test_make_runs_worker_is_started_again_when_it_exits(tmp_path):
    """`make run` runs the worker under config.keepalive: a worker that dies is started again,
    and stopping make stops both."""
    marks = tmp_path / "runs"
    child = (
        "import pathlib, sys, time\n"
        f"p = pathlib.Path({str(marks)!r})\n"
        "runs = p.read_text().count('run') if p.exists() else 0\n"
        "p.write_text(p.read_text() + 'run\\n' if p.exists() else 'run\\n')\n"
        "sys.exit(1) if runs == 0 else time.sleep(60)\n"
    )
    keeper = subprocess.Popen([sys.executable, "-m", "config.keepalive", sys.executable, "-c", child],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end and not (
            marks.exists() and marks.read_text().count("run") >= 2
        ):
            time.sleep(0.1)
        assert marks.read_text().count("run") == 2  # died once, started again, still running
    finally:
        keeper.send_signal(signal.SIGTERM)
        code = keeper.wait(10)
    assert "exited with 1; starting it again" in keeper.stderr.read()
    assert code == 0  # told to stop: the child got the signal, keepalive ended cleanly
