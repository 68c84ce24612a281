"""/metrics for Prometheus (issue #16): off by default, a bearer token when on, the dashboard's
counts, HTTP requests by route, and a real worker's pipeline instruments and heartbeat."""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from generator import actions
from generator.models import Generation
from generator.tasks import run_generation
from tests.procs import gunicorn

pytestmark = pytest.mark.django_db
TOKEN = "scrape-token-for-tests"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value}, parsed by prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(client) -> dict:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


@pytest.fixture
def metrics_on(settings):
    settings.EASEL_METRICS_TOKEN = TOKEN
    settings.MIDDLEWARE = ["config.metrics.MetricsMiddleware", *settings.MIDDLEWARE]


def test_metrics_are_off_by_default(client, settings):
    settings.EASEL_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 404


def test_metrics_need_the_token(client, metrics_on):
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in wrong.content.decode()
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_dashboard_and_the_metrics_show_the_same_counts(
    client, metrics_on, staff, owner, stranger, make_generation
):
    for status, n in (("completed", 3), ("failed", 2), ("queued", 1), ("canceled", 1)):
        for i in range(n):
            make_generation(owner if i % 2 else stranger, status=status, error="x")
    Generation.objects.filter(pk=make_generation(owner).pk).update(provider="openai")
    got = scrape(client)
    gauges = {
        dict(labels)["provider"] + "/" + dict(labels)["status"]: value
        for (name, labels), value in got.items()
        if name == "easel_generations"
    }
    assert gauges == {
        "local/completed": 3,
        "local/failed": 2,
        "local/queued": 1,
        "local/canceled": 1,
        "openai/completed": 1,
    }
    client.force_login(staff)
    page = client.get("/admin/generator/generation/dashboard/").content.decode()
    table = page.split('id="all-by-provider"')[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>(\d+)</td></tr>", table)
    assert {f"{p}/{s}": float(n) for p, s, n in rows} == gauges


def test_requests_are_counted_by_route_pattern_not_by_path(
    client, metrics_on, owner, make_generation
):
    gen = make_generation(owner)
    client.force_login(owner)
    before = scrape(client)
    for _ in range(3):
        assert client.get(f"/gallery/{gen.public_id}/").status_code == 200
    client.get("/gallery/nope-not-there/")
    client.generic("BREW", "/")  # a stranger's verb is "other", not a new series
    after = scrape(client)

    def count(method: str, route: str, status: str, got: dict) -> float:
        key = (
            "easel_http_requests_total",
            (("method", method), ("route", route), ("status", status)),
        )
        return got.get(key, 0.0)

    route = "/gallery/<public_id:public_id>/"
    assert count("GET", route, "200", after) - count("GET", route, "200", before) == 3
    assert count("GET", route, "404", after) - count("GET", route, "404", before) == 1
    assert not any(gen.public_id in str(labels) for _, labels in after)
    assert any(dict(labels).get("method") == "other" for _, labels in after)
    assert not any(dict(labels).get("method") == "BREW" for _, labels in after)


def test_pipeline_instruments_in_process(client, metrics_on, owner, make_generation):
    """The instruments the model observes: queue wait at the claim, provider latency and the
    finished/failure counters at the end (here in-process; below, in a real worker)."""
    before = scrape(client)
    gen = make_generation(owner, status=Generation.Status.QUEUED)
    run_generation(gen.pk)
    bad = make_generation(owner, status=Generation.Status.QUEUED)
    bad.fail("Refused before sending.")  # never reached the provider
    after = scrape(client)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("easel_generations_finished_total", provider="local", status="completed") == 1
    assert delta("easel_generations_finished_total", provider="local", status="failed") == 1
    assert delta("easel_generation_failures_total", provider="local", reason_class="not_sent") == 1
    assert delta("easel_queue_wait_seconds_count", provider="local") == 1
    assert delta("easel_provider_latency_seconds_count", provider="local", status="completed") == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_serves_its_pipeline_metrics_and_its_heartbeat(
    start_worker, client, metrics_on, settings, owner, local_model, tmp_path
):
    """A prefork worker (2 pool processes) sums its pool's observations on its own port; its
    heartbeat reaches every web node's /metrics through the shared cache (Redis)."""
    import os

    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.ResilientRedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": "easel",
        }
    }
    port = free_port()
    started = time.time()
    worker = start_worker(
        delay=0,
        concurrency=2,
        EASEL_WORKER_METRICS_PORT=str(port),
        EASEL_WORKER_HEARTBEAT_SECONDS="0.5",
        EASEL_VAR_DIR=str(tmp_path / "worker-var"),
    )
    gens = [
        actions.submit(owner, {"model": local_model, "prompt": f"metrics {i}", "num_images": 1})[0]
        for i in range(6)
    ]
    end = time.monotonic() + 60
    while time.monotonic() < end and not all(
        g.is_final for g in Generation.objects.filter(pk__in=[g.pk for g in gens])
    ):
        time.sleep(0.2)
    statuses = set(Generation.objects.filter(pk__in=[g.pk for g in gens]).values_list("status"))
    assert statuses == {("completed",)}, worker.log()

    got = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
    finished = (
        "easel_generations_finished_total",
        (("provider", "local"), ("status", "completed")),
    )
    assert got[finished] == 6, worker.log()
    assert got[("easel_queue_wait_seconds_count", (("provider", "local"),))] == 6
    latency = (
        "easel_provider_latency_seconds_count",
        (("provider", "local"), ("status", "completed")),
    )
    assert got[latency] == 6

    def ours(beats: dict) -> bool:
        return any(name.startswith("test-") and when >= started for name, when in beats.items())

    beats: dict = {}
    end = time.monotonic() + 15
    while time.monotonic() < end and not ours(beats):
        beats = {
            dict(labels)["worker"]: value
            for (name, labels), value in scrape(client).items()
            if name == "easel_worker_heartbeat_timestamp_seconds"
        }
        time.sleep(0.3)
    # Other tests' workers may have left beats that have not expired yet: this worker's is new.
    assert ours(beats), (beats, worker.log())


@pytest.mark.django_db(transaction=True)
def test_gunicorn_sums_its_workers_requests_in_every_scrape(tmp_path):
    """Two gunicorn workers: whichever one answers the scrape, it reports both workers' requests
    (multiprocess mode, config/metrics_env.py via gunicorn.conf.py)."""
    with gunicorn(tmp_path, free_port(), EASEL_METRICS_TOKEN=TOKEN) as (base, tries):
        for _ in range(39):  # 40 with the one that found it up
            assert httpx.get(base + "/healthz", timeout=5).status_code == 200
        key = (
            "easel_http_requests_total",
            (("method", "GET"), ("route", "/healthz"), ("status", "200")),
        )
        auth = {"Authorization": f"Bearer {TOKEN}"}
        seen = set()
        for _ in range(6):  # new connections: both workers answer some of these
            response = httpx.get(base + "/metrics", headers=auth, timeout=5)
            assert response.status_code == 200, (tmp_path / "gunicorn.log").read_text()[-2000:]
            seen.add(samples(response.text)[key])
        assert len(seen) == 1, seen  # one per-process count would differ between workers
        assert 40 <= seen.pop() <= 39 + tries
        assert (tmp_path / "var" / "metrics" / "web").is_dir()
