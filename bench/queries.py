"""bench/run.py, queries: the SQL queries of the gallery pages counted in each cache state, and
EXPLAIN ANALYZE of every generations query they make when nothing is cached."""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext


@contextmanager
def empty_cache():
    """The default cache as it is before anything was stored: the same backend under a key
    prefix nobody has used, for counting what a first view costs without flushing anything."""
    from django.core.cache import caches

    backend = caches["default"]
    saved = backend.key_prefix
    backend.key_prefix = f"{saved}-empty{time.time_ns()}"
    try:
        yield
    finally:
        backend.key_prefix = saved


class QuerySteps:
    """Bench's query step (a mixin of bench.run.Bench: uses its heavy user, urls(), log(),
    rows and plans)."""

    def explain(self) -> None:
        """Count the queries of the three gallery pages in each cache state, and EXPLAIN
        ANALYZE every generations query they make when nothing is cached."""
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from generator import counters

        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(self.heavy)
        # state -> page -> queries: "cold" (an empty cache: the first view ever), "changed"
        # (one of the user's generations changed: the page and its counts are computed
        # again, unchanged cards come from the cache), "seen" (the same page again).
        self.query_counts: dict[str, dict[str, int]] = {"cold": {}, "changed": {}, "seen": {}}
        seq_scans = 0
        for name, url in self.urls().items():
            if url.startswith("/bench/"):
                continue
            captured = {}
            client.get(url)  # seen once in this cache, then:
            for state in ("cold", "seen", "changed"):
                if state == "changed":
                    counters.bump_user(self.heavy.pk)
                with empty_cache() if state == "cold" else nullcontext():
                    with CaptureQueriesContext(connection) as ctx:
                        response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)
                captured[state] = ctx.captured_queries
                self.query_counts[state][name] = len(ctx.captured_queries)
            cards = response.content.decode().count('class="gen-card')
            self.plans.append(
                f"#### {name}: {cards} cards; {len(captured['cold'])} queries with an empty "
                f"cache, {len(captured['changed'])} after a change, {len(captured['seen'])} "
                "seen before\n"
            )
            for q in captured["cold"]:
                sql = q["sql"]
                if "generator_generation" not in sql or not sql.lstrip().upper().startswith(
                    "SELECT"
                ):
                    continue
                with connection.cursor() as cur:
                    cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING ON) " + sql)
                    plan = "\n".join(r[0] for r in cur.fetchall())
                if "Seq Scan on generator_generation" in plan:
                    seq_scans += 1
                short = sql if len(sql) < 400 else sql[:400] + " …"
                self.plans.append(f"```sql\n{short}\n```\n```\n{plan}\n```\n")
        self.seq_scans = seq_scans
        self.log(f"queries per page: {self.query_counts}; seq scans of generations: {seq_scans}")
        # Constant: in each cache state, page 1, the deep page and the filtered page make the
        # same number of queries.
        self.rows.append(
            {
                "measure": "SQL queries per gallery page (p1 / deep / filtered)",
                "value": "; ".join(
                    f"{state} {' / '.join(str(v) for v in counts.values())}"
                    for state, counts in self.query_counts.items()
                ),
                "baseline": "",
                "ratio": "",
                "target": "constant",
                "ok": all(len(set(c.values())) == 1 for c in self.query_counts.values()),
            }
        )
        self.rows.append(
            {
                "measure": "seq scans of generations in gallery plans",
                "value": str(seq_scans),
                "baseline": "",
                "ratio": "",
                "target": "0",
                "ok": seq_scans == 0,
            }
        )
