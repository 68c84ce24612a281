"""bench/RESULTS.md for the standalone scripts (async_jobs, fairness, embedded): each has its
own section, a table under a fixed header, and appends one row per run."""

from __future__ import annotations

from bench.procs import ROOT

RESULTS = ROOT / "bench" / "RESULTS.md"


def append_row(header: str, preamble: str, columns: list[str], row: str) -> None:
    """Append `row` (a Markdown table line) to the table under `header`, creating the section
    (header, `preamble` text, the column line) the first time; other sections may follow it."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if header not in text:
        head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
        text = text.rstrip("\n") + f"\n\n{header}\n\n{preamble.strip()}\n\n{head}"
    before, _, tail = text.partition(header)
    table_end = tail.find("\n\n", tail.find("|---|"))
    if table_end == -1:
        tail = tail.rstrip("\n") + "\n" + row.rstrip("\n") + "\n"
    else:
        tail = tail[:table_end] + "\n" + row.rstrip("\n") + tail[table_end:]
    RESULTS.write_text(before + header + tail)
