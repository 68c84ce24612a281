"""The web nodes' WSGI app in tests/test_multinode.py: Easel's own (config.wsgi) plus the
test-only counting simulator's provider, which the product never lists (a worker gets it
with `--include tests.simulators.counting`; gunicorn has no such flag)."""

from config.wsgi import application  # noqa: F401 (sets Django up first)
from tests.simulators import counting  # noqa: F401,E402 (registers "counting-sim")
