"""Issue 16: many machines, proven here — haproxy (health check GET /readyz) in front of two
gunicorn web nodes, two Celery worker nodes, one beat, a private PostgreSQL cluster, S3 (moto
server), a private redis-server (cache; the broker in one run) and a private RabbitMQ node (the
broker in the other run), a provider simulator that logs every submission. Under a steady load
of sign-ins, submissions and gallery views: kill -9 a web node, kill -9 the worker node that
holds a request open at the provider, restart PostgreSQL, restart the broker (and, with
RabbitMQ, the Redis cache). haproxy behaviour follows its configuration manual ("option
httpchk", "check inter/fall/rise", "retries"/"option redispatch").
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import httpx
import pytest

from tests import s3server
from tests.conftest import require
from tests.multinode import Load, _group_kill, _wait_http, sign_in, submit
from tests.multinode_cluster import Cluster
from tests.multinode_sim import HOLD
from tests.procs import ROOT

pytestmark = [pytest.mark.multinode, pytest.mark.timeout(300)]
s3, s3_endpoint = s3server.s3, s3server.s3_endpoint
TERMINAL = {"completed", "failed", "canceled"}
REASON = "not sent again"  # the reaper's words for a job that may have reached the provider


@pytest.fixture(params=["rabbitmq", "redis"])
def cluster(request, tmp_path, s3):
    require(shutil.which("haproxy") is not None, "haproxy is not installed")
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    c = Cluster(request.param, tmp_path, s3)
    try:
        c.start()
        yield c
    finally:
        c.close()


def _readyz(url: str) -> httpx.Response:
    return httpx.get(url + "/readyz", timeout=15)


def _settle(load: Load, cluster: Cluster, fault: dict) -> None:
    """After a fault's end: /readyz green through haproxy, then the first submission accepted
    after it (the fault's recovery time); the load's phase goes back to steady after that."""
    assert _wait_http(cluster.base + "/readyz", timeout=60), cluster.logs()
    end = time.monotonic() + 60
    while time.monotonic() < end and load.first_accepted_after(fault["end"]) is None:
        time.sleep(0.1)
    first = load.first_accepted_after(fault["end"])
    assert first is not None, (fault, load.events[-10:], cluster.logs())
    fault["recovered_after_s"] = round(first - fault["end"], 2)
    time.sleep(1.0)  # requests already answered by haproxy's 503 finish in this phase
    load.phase = "steady"


def _outage(load, cluster, name, stop, start, down_check) -> dict:
    """Stop a service under load; /readyz on both web nodes answers 503 naming it while it is
    down; start it after 3 s; /readyz green again; recovery measured."""
    load.phase = name
    fault = {"name": name, "start": load.now()}
    stop()
    for node in cluster.web_urls:
        red = _readyz(node)
        assert red.status_code == 503, red.text
        assert red.json()["checks"][down_check].startswith("down"), red.text
    time.sleep(3)
    start()
    fault["end"] = load.now()
    t = time.monotonic()
    for node in cluster.web_urls:
        assert _wait_http(node + "/readyz", timeout=60), cluster.logs()
    fault["readyz_green_after_s"] = round(time.monotonic() - t, 2)  # both nodes 200 again
    _settle(load, cluster, fault)
    return fault


def _kill_the_worker_holding_a_request(load, cluster, client) -> tuple[dict, str]:
    """A submission held open at the provider (the simulator answers only after release());
    the worker node whose process sent it is killed -9 while the row says submitted."""
    load.phase = "worker kill"
    fault = {"name": "worker kill (job at the provider)", "start": load.now()}
    _, held = submit(client, f"{HOLD} {os.getpid()}")
    assert held, "the held submission was not accepted"
    assert cluster.sim.held.wait(60), cluster.logs()
    pid = cluster.sim.held_by_pid()
    assert pid, "no process holds the request"
    row = cluster.query(
        "SELECT status, submitted_at IS NOT NULL FROM generator_generation WHERE public_id = %s",
        held,
    )
    assert row == [("running", True)], row
    index = cluster.worker_index_of(pid)
    cluster.kill_worker(index)  # kill -9 the node, then start it again as systemd would
    cluster.sim.release()
    fault.update(end=load.now(), node=f"worker {'ab'[index]}")
    _settle(load, cluster, fault)
    return fault, held


def test_many_machines_survive_kills_and_restarts_of_every_part(cluster):
    load = Load(cluster.base, cluster.load_users, cluster.password, time.monotonic())
    threads = [threading.Thread(target=load.run, args=(n,), daemon=True) for n in range(3)]
    for t in threads:
        t.start()
    faults = []
    try:
        time.sleep(3)
        load.phase = "web kill"
        web = {"name": "web kill", "start": load.now(), "node": "web a"}
        _group_kill(cluster.webs[0])  # kill -9 web node a
        web["end"] = load.now()
        cluster.start_web(0)
        _settle(load, cluster, web)
        faults.append(web)
        with httpx.Client(base_url=cluster.base, timeout=15) as holder:
            assert sign_in(holder, cluster.hold_user, cluster.password).status_code == 302
            worker, held = _kill_the_worker_holding_a_request(load, cluster, holder)
        faults.append(worker)
        assert _wait_http(cluster.web_urls[0] + "/readyz", timeout=60), cluster.logs()
        faults.append(
            _outage(load, cluster, "postgresql restart", cluster.pg.stop, cluster.pg.start,
                    "database")
        )  # fmt: skip
        broker = cluster.rabbit or cluster.redis
        faults.append(
            _outage(load, cluster, f"broker restart ({cluster.broker})", broker.stop,
                    broker.start, "broker")
        )  # fmt: skip
        if cluster.rabbit:
            faults.append(
                _outage(load, cluster, "cache restart (redis)", cluster.redis.stop,
                        cluster.redis.start, "cache")
            )  # fmt: skip
        time.sleep(2)
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=30)
    stopped = load.now()

    # Every generation ends (the reaper resolves what the dead worker and the outages left).
    end = time.monotonic() + 150
    while time.monotonic() < end:
        open_rows = cluster.query(
            "SELECT count(*) FROM generator_generation WHERE status <> ALL(%s)", list(TERMINAL)
        )[0][0]
        if not open_rows:
            break
        time.sleep(1)
    all_terminal = load.now()
    # The whole pipeline is back after each fault: a generation submitted after its end completed.
    for f in faults:
        done = cluster.query(
            "SELECT min(extract(epoch FROM finished_at)) FROM generator_generation "
            "WHERE status = 'completed' AND created_at >= to_timestamp(%s)",
            load.wall0 + f["end"],
        )[0][0]
        assert done is not None, f
        f["completed_after_s"] = round(float(done) - load.wall0 - f["end"], 2)
    gens = dict(cluster.query("SELECT public_id, status FROM generator_generation"))
    accepted = {g for _, g in load.accepted}
    assert accepted and accepted <= set(gens), accepted - set(gens)
    assert set(gens.values()) <= TERMINAL, {g: s for g, s in gens.items() if s not in TERMINAL}

    # Sent to the provider at most once each; every completed one exactly once.
    sent = dict(cluster.sim.submissions)
    assert cluster.sim.duplicates == {}, cluster.sim.duplicates
    assert all(sent.get(g) == 1 for g, s in gens.items() if s == "completed"), sent
    # The job held at the provider when its worker died: failed with the reason, not resent.
    status, error = cluster.query(
        "SELECT status, error FROM generator_generation WHERE public_id = %s", held
    )[0]
    assert (status, sent.get(held)) == ("failed", 1) and REASON in error, (status, error, sent)

    # Every completed generation's images are in the bucket.
    images = cluster.query(
        "SELECT i.file, i.thumbnail, g.public_id FROM generator_outputimage i "
        "JOIN generator_generation g ON g.id = i.generation_id WHERE g.status = 'completed'"
    )
    completed = [g for g, s in gens.items() if s == "completed"]
    assert len(images) == len(completed), (len(images), len(completed))
    keys = set(cluster.s3.keys())
    missing = [
        (g, f if f not in keys else "", t if t not in keys else "", [k for k in keys if g in k])
        for f, t, g in images
        if f not in keys or t not in keys
    ]  # (generation, missing file, missing thumbnail, what the bucket holds for it)
    assert not missing, (missing, cluster.grep_logs([m[0] for m in missing]))

    # Requests fail only during a fault (none in steady state, none for the worker kill), and
    # at the web kill only those in flight on the killed node.
    by_phase = load.failures_by_phase()
    assert set(by_phase) <= {f["name"] for f in faults} - {"worker kill"}, by_phase
    assert sum(by_phase.get("web kill", {}).values()) <= 6, by_phase
    # Without its broker or cache a node still serves (a submission waits for the reaper, the
    # cache degrades to none, haproxy checks /readyz?need=database): no request fails then.
    # Only the database's outage fails requests (a 503), as nothing can be served without it.
    degraded = {p: n for p, n in by_phase.items() if p.startswith(("broker", "cache"))}
    assert not degraded, degraded
    server_errors = [f for f in load.failures() if f[4] == 500]
    assert not server_errors, server_errors  # an outage is a 503 (haproxy or Easel), not a 500

    # 50 idle sockets to haproxy leave pages answering.
    idle = [socket.create_connection(("127.0.0.1", cluster.port), timeout=5) for _ in range(50)]
    try:
        time.sleep(0.5)
        for _ in range(5):
            assert httpx.get(cluster.base + "/accounts/login/", timeout=5).status_code == 200
    finally:
        for s in idle:
            s.close()

    _report(cluster, load, faults, gens, sent, held, error, stopped, all_terminal)


def _report(cluster, load, faults, gens, sent, held, error, stopped, all_terminal):
    by_status: dict[str, int] = {}
    for s in gens.values():
        by_status[s] = by_status.get(s, 0) + 1
    kinds: dict[str, int] = {}
    for e in load.events:
        kinds[e[2]] = kinds.get(e[2], 0) + 1
    per_fault = "; ".join(
        f"{f['name']} at t={f['start']}s–{f['end']}s"
        + (f" ({f['node']})" if "node" in f else "")
        + (f", /readyz red then green {f['readyz_green_after_s']}s after the restart"
           if "readyz_green_after_s" in f else "")
        + f", first accepted submission {f['recovered_after_s']}s after, first completed "
        f"generation submitted after it {f['completed_after_s']}s after, failures "
        f"{load.failures_by_phase().get(f['name'].split(' (job')[0], {})}"
        for f in faults
    )  # fmt: skip
    figures = (
        f"broker {cluster.broker}: requests {len(load.events)} {kinds}, nodes seen "
        f"{sorted({e[3] for e in load.events})}; failures {len(load.failures())}. Per fault: "
        f"{per_fault}. Generations {len(gens)} (accepted by a 302: {len(set(load.accepted))}) "
        f"{by_status}, all terminal at t={all_terminal}s (load stopped at t={stopped}s); "
        f"provider submissions per generation: max {max(sent.values())}, total "
        f"{sum(sent.values())}, none twice; the held job: failed, sent once, reason "
        f"{error!r}; worker nodes that exited on their own and were started again (systemd "
        f"Restart=always): {[(round(t - load.wall0, 1), n, e) for t, n, e in cluster.exits]}"
    )
    print(figures)
    if os.environ.get("EASEL_RECORD_MULTINODE") != "1":  # CI and plain runs leave the tree clean
        return
    with open(ROOT / "bench" / "RESULTS.md", "a") as out:
        out.write(
            f"\n## tests/test_multinode.py ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{os.uname().nodename}, {os.cpu_count()} CPUs)\n\n{figures}\n"
        )
