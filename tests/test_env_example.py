""".env.example documents every variable (the guide's rule): each name that config/ reads with
env(), env_int(), env_bool(), env_list() or os.environ has a `NAME=` line in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READS = re.compile(r'\b(?:env(?:_int|_bool|_list)?|os\.environ(?:\.get)?)\(\s*"([A-Z][A-Z0-9_]+)"')


def test_every_variable_config_reads_is_in_env_example():
    names = {m for p in (ROOT / "config").glob("*.py") for m in READS.findall(p.read_text())}
    example = (ROOT / ".env.example").read_text()
    missing = sorted(n for n in names if not re.search(rf"^#?\s*{n}=", example, re.M))
    assert len(names) > 50 and missing == []
