"""Keep a process running: `python -m config.keepalive CMD ARGS…` starts CMD, and starts it again
whenever it exits, after a short pause (longer if it keeps dying at once), until this process is
told to stop (SIGINT/SIGTERM, which it passes on). `make run` runs the embedded worker under it,
so a worker that exits does not stop generation for everyone; production uses systemd's
`Restart=always` for the same (docs/DEPLOY.md)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

QUICK_EXIT = 10.0  # a run shorter than this counts as "dying at once"
MAX_PAUSE = 30.0


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m config.keepalive CMD [ARGS…]", file=sys.stderr)
        return 2
    child: subprocess.Popen | None = None
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pause = 1.0
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen(argv)
        code = child.wait()
        if stopping:
            return 0  # told to stop: a clean end, whatever the child answered to the signal
        pause = min(MAX_PAUSE, pause * 2) if time.monotonic() - started < QUICK_EXIT else 1.0
        print(f"keepalive: {argv[0]} exited with {code}; starting it again in {pause:g} s",
              file=sys.stderr, flush=True)  # fmt: skip
        time.sleep(pause)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
