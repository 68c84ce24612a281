"""Serve every provider SIMULATOR on fixed loopback ports — TEST EQUIPMENT, not real providers.

So a person can try every provider offline: `make run SIMULATORS=1` runs this next to the web
server and worker, with the environment it prints. Nothing here talks to a real provider;
images come from the simulators' own generated PNGs.

    .venv/bin/python tests/simulators/serve.py               # start them, print the env vars
    .venv/bin/python tests/simulators/serve.py --print-env   # only print `export K=V` lines
    .venv/bin/python tests/simulators/serve.py --job-duration 5

Every module in tests/simulators/ is served (except base, serve and the test-only counting
simulator). A simulator class maps itself to env vars with a `env_vars(url)` classmethod;
for the ones that do not, the SPECS table below holds their port and variables. Unknown new
simulators are still served, on the next free port from 8790, with their URL printed.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import inspect
import pkgutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.simulators.base import Simulator  # noqa: E402

HOST = "127.0.0.1"
SKIP = {"base", "serve", "counting"}
# Fixed so that --print-env (run before the servers start) and the servers agree.
REPLICATE_SECRET = "whsec_" + base64.b64encode(b"easel-simulator-webhook-key-0001").decode()

Env = Callable[[str, Simulator], dict[str, str]]


def _attr(name: str) -> Env:
    return lambda url, sim: getattr(sim, name)


SPECS: list[dict[str, Any]] = [
    {"cls": "MeteronSimulator", "port": 8701},
    {"cls": "ScenarioSimulator", "port": 8702},
    {
        "cls": "OpenAISimulator",
        "port": 8703,
        "kwargs": {"flavour": "openai"},
        "env": lambda url, sim: {"OPENAI_BASE_URL": url, "OPENAI_API_KEY": sim.api_key},
    },
    {
        "cls": "OpenAISimulator",
        "port": 8704,
        "kwargs": {"flavour": "airefinery"},
        "env": lambda url, sim: {"AIREFINERY_BASE_URL": url, "AIREFINERY_API_KEY": sim.api_key},
    },
    {
        "cls": "ArtificialStudioSimulator",
        "port": 8705,
        "env": lambda url, sim: {
            "ARTIFICIAL_STUDIO_BASE_URL": url,
            "ARTIFICIAL_STUDIO_API_KEY": sim.api_key,
        },
    },
    {
        "cls": "ReplicateSimulator",
        "port": 8706,
        "env": lambda url, sim: {
            "REPLICATE_BASE_URL": url,
            "REPLICATE_API_TOKEN": sim.token,
            "REPLICATE_WEBHOOK_SECRET": REPLICATE_SECRET,
        },
    },
]


def discover() -> list[type[Simulator]]:
    package = ROOT / "tests" / "simulators"
    found: list[type[Simulator]] = []
    for info in sorted(pkgutil.iter_modules([str(package)]), key=lambda i: i.name):
        if info.name in SKIP:
            continue
        module = importlib.import_module(f"tests.simulators.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Simulator)
                and cls is not Simulator
                and cls.__module__ == module.__name__
            ):
                found.append(cls)
    return found


def plan(classes: list[type[Simulator]]) -> list[tuple[type[Simulator], int, dict, Env | None]]:
    """(class, port, constructor kwargs, env builder) for everything to serve."""
    by_name = {cls.__name__: cls for cls in classes}
    entries = []
    for spec in SPECS:
        cls = by_name.get(spec["cls"])
        if cls is not None:
            entries.append((cls, spec["port"], spec.get("kwargs", {}), spec.get("env")))
    planned = {spec["cls"] for spec in SPECS}
    port = 8790
    for cls in classes:
        if cls.__name__ not in planned:
            entries.append((cls, port, {}, None))
            port += 1
    return entries


def env_for(cls, url: str, sim: Simulator, env: Env | None) -> dict[str, str]:
    if env is not None:
        return env(url, sim)
    if hasattr(cls, "env_vars"):
        return cls.env_vars(url)
    return {}


def build(
    entries, job_duration: float, bind: bool = True
) -> list[tuple[Simulator, dict[str, str]]]:
    """The simulators and their env. bind=False builds them on ephemeral ports (to read their
    keys) while the env still names the fixed ports."""
    sims = []
    for cls, port, kwargs, env in entries:
        sim = cls(host=HOST, port=port if bind else 0, **kwargs)
        for attr in ("job_duration", "duration"):
            if hasattr(sim, attr):
                setattr(sim, attr, job_duration)
        if hasattr(sim, "secret") and cls.__name__ == "ReplicateSimulator":
            sim.secret = REPLICATE_SECRET
        url = f"http://{HOST}:{port}"
        sims.append((sim, env_for(cls, url, sim, env)))
    return sims


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the provider simulators (test equipment).")
    parser.add_argument(
        "--print-env",
        action="store_true",
        help="print `export K=V` lines for the fixed ports and exit",
    )
    parser.add_argument(
        "--job-duration",
        type=float,
        default=3.0,
        help="seconds a simulated async job takes (default 3)",
    )
    args = parser.parse_args(argv)

    entries = plan(discover())
    if args.print_env:
        # Build without starting: the env needs only ports and the simulators' fixed keys.
        for sim, env in build(entries, args.job_duration, bind=False):
            sim.server.server_close()
            for key, value in env.items():
                print(f"export {key}={value}")
        return 0

    sims = build(entries, args.job_duration)
    print("=" * 78)
    print(" PROVIDER SIMULATORS — TEST EQUIPMENT, NOT REAL PROVIDERS (loopback only)")
    print(" Images are generated locally; nothing is sent to Meteron, Scenario, OpenAI, …")
    print("=" * 78)
    for sim, _env in sims:
        sim.start()
        print(f"  {type(sim).__name__:<28} {sim.url}")
    print("\nSet these for the web server and the worker (make run SIMULATORS=1 does it):")
    for _, env in sims:
        for key, value in env.items():
            print(f"  export {key}={value}")
    print(
        "\nThen add a model, e.g.:\n  .venv/bin/python manage.py addmodel sim-meteron "
        "--provider meteron --remote-id stable-diffusion --name 'Meteron (simulator)'"
    )
    sys.stdout.flush()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for sim, _ in sims:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
