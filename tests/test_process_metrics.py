"""Metrics from every process: a Celery worker's pool processes and gunicorn's workers each count in
their own memory, and what their endpoint serves is the sum over all of them (prometheus_client's
multiprocess mode). Real processes, scraped over HTTP."""

import re
import threading
from collections import Counter

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import client_for
from tests.factories import UserFactory
from tests.processes import Process, free_port, wait_for_http
from tests.test_modes import distributed_env
from tests.workflows.helpers import chain_body, create
from tests.workflows.workers import start_worker, wait_for_run, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = 6
STEPS = 3


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_workers_endpoint_sums_what_its_pool_processes_executed():
    port = free_port()
    user_api = client_for(UserFactory())
    workflow = create(user_api, chain_body(*(f"s{n}" for n in range(STEPS)), status="active"))
    worker = start_worker("metrics", pool="prefork", concurrency=2, env=worker_env(DWC_METRICS_PORT=str(port)))
    try:
        run_ids = []
        for _ in range(RUNS):
            answer = user_api.post(f"/api/v3/workflows/{workflow['id']}/runs", {"input": {}}, format="json")
            assert answer.status_code == 202, answer.content
            run_ids.append(answer.json()["id"])
        for run_id in run_ids:
            assert wait_for_run(run_id, timeout=30).status == "succeeded"
        scraped = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    finally:
        worker.stop()

    executed = scraped[("dwc_step_executions_total", (("status", "succeeded"), ("type", "text")))]
    assert executed == RUNS * STEPS
    waits = scraped[("dwc_step_queue_wait_seconds_count", (("queue", "engine"),))]
    assert waits == RUNS * STEPS
    assert scraped[("dwc_step_duration_seconds_count", (("type", "text"),))] == RUNS * STEPS
    assert scraped[("dwc_workflow_runs_total", (("status", "succeeded"),))] == RUNS
    # Read at scrape time: the queues (emptied by now) and the drain.
    assert scraped[("dwc_queue_depth", (("queue", "engine"),))] == 0
    assert ("dwc_queue_depth", (("queue", "generation"),)) in scraped
    assert scraped[("dwc_engine_draining", ())] == 0


def test_gunicorns_metrics_are_the_sum_over_its_workers():
    port = free_port()
    env = distributed_env(WEB_WORKERS="2", DWC_HTTP_THREADS="1")
    args = [
        ".venv/bin/gunicorn",
        "-c",
        "config/gunicorn.py",
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        # Two connections at a time per worker: the others wait for the second worker's accept.
        "--worker-connections",
        "2",
        "--access-logfile",
        "-",
        "--access-logformat",
        "served-by %(p)s %(U)s",
    ]
    server = Process(args, env, "gunicorn-2")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", server)
        sent = Counter()

        def ask(n: int) -> None:
            for _ in range(n):  # a connection each: a kept-alive one would stay with one worker
                sent[httpx.get(f"{base}/health", headers={"Connection": "close"}, timeout=10).status_code] += 1

        threads = [threading.Thread(target=ask, args=(10,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sent == {200: 60}
        scraped = samples(httpx.get(f"{base}/metrics", timeout=10).text)
    finally:
        server.stop()
    # Read once gunicorn has stopped: a worker writes its access line after the response has left, so
    # the client can be done before the line is.
    workers = Counter(re.findall(r"served-by <?(\d+)>? /health", server.output()))
    assert len(workers) == 2, f"one worker served every request: {workers}"
    # Each worker served part of them (and of wait_for_http's); the scrape, answered by one, counts them all.
    health = sum(
        value
        for (name, labels), value in scraped.items()
        if name == "django_http_responses_total_by_status_view_method_total" and ("view", "health") in labels
    )
    assert health == sum(workers.values()) >= 60


def test_beat_serves_the_queue_depths_and_the_drain(transactional_db, tmp_path):
    port = free_port()
    beat = Process(
        [".venv/bin/celery", "-A", "config", "beat", "--loglevel", "INFO", "--schedule", str(tmp_path / "beat")],
        worker_env(DWC_METRICS_PORT=str(port)),
        "beat-metrics",
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/metrics", beat)
        scraped = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    finally:
        beat.stop()
    assert {("dwc_queue_depth", (("queue", queue),)) for queue in ("engine", "calls")} <= set(scraped)
    assert scraped[("dwc_engine_draining", ())] == 0
