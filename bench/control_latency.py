"""How long the step after a slow call waits to start: control work on workers of its own against one
pool on every queue, in the same run.

    .venv/bin/python bench/control_latency.py

50 runs of `http_request` (a local server that answers after CALL_SECONDS) → `transform`, started at
once, on two topologies of 2 prefork workers for the steps:
- "one pool": 2 workers consuming every queue (engine, calls, generation, notifications), as a plain
  `celery -A config worker` does; advancing runs and cheap steps wait behind queued calls;
- "split": the same 2 workers on the step queues (`make worker`) plus one engine worker
  (`make engine-worker`, concurrency 1) on the control queue.
Prints, for each, the gap between a call's end (`fetch.finished_at`) and its next step's start
(`after.started_at`): median, p95 and max, and the wall time for all 50 runs.
Needs PostgreSQL and Redis on localhost (BENCH_DATABASE_URL, BENCH_REDIS_URL override them).
"""

import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

# Run as a file, this script has bench/ on sys.path, not the project that holds bench/ and the apps.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import PROJECT, configure, create_database
from bench.servers import slow_peer

DATABASE_URL, _ = configure()
os.environ.setdefault("DWC_OUTBOUND_ALLOWLIST", "127.0.0.1")
RUNS = 50
CALL_SECONDS = 3.0
STEP_QUEUES = "calls,generation,notifications"
TOPOLOGIES = {
    "one pool": [("engine,calls,generation,notifications", 2), ("engine,calls,generation,notifications", 2)],
    "split": [(STEP_QUEUES, 2), (STEP_QUEUES, 2), ("engine", 1)],
}


def start_workers(topology: list[tuple[str, int]]) -> list[subprocess.Popen]:
    workers = []
    for index, (queues, concurrency) in enumerate(topology):
        args = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork"]
        args += ["--concurrency", str(concurrency), "--queues", queues, "--without-mingle", "--without-gossip"]
        args += ["--hostname", f"bench{index}@%h", "--loglevel", "WARNING"]
        workers.append(subprocess.Popen(args, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return workers


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(workflow, user, topology) -> tuple[list[float], float]:
    from workflows.models import Run, StepRun
    from workflows.services.runs import run_trigger

    workers = start_workers(topology)
    try:
        time.sleep(5)  # let the workers connect
        started = time.perf_counter()
        run_ids = [run_trigger(workflow=workflow, input={}, trigger="api", actor=user)[0].pk for _ in range(RUNS)]
        deadline = time.monotonic() + 300
        while Run.objects.filter(pk__in=run_ids, status__in=["succeeded", "failed"]).count() < RUNS:
            if time.monotonic() > deadline:
                raise TimeoutError("the runs did not finish")
            time.sleep(0.1)
        wall = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
    assert Run.objects.filter(pk__in=run_ids, status="succeeded").count() == RUNS
    steps = {(step.run_id, step.node_key): step for step in StepRun.objects.filter(run_id__in=run_ids)}
    gaps = [
        (steps[(run_id, "after")].started_at - steps[(run_id, "fetch")].finished_at).total_seconds()
        for run_id in run_ids
    ]
    return gaps, wall


def main() -> None:
    create_database(DATABASE_URL)
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.services import user_register
    from workflows.services.definitions import workflow_create

    call_command("migrate", verbosity=0)
    server = slow_peer(CALL_SECONDS)
    user = user_register(
        email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password=uuid.uuid4().hex + "-Aa1", name="Bench"
    )
    nodes = [
        {"key": "fetch", "type": "http_request", "config": {"url": f"http://127.0.0.1:{server.server_port}/"}},
        {"key": "after", "type": "transform", "config": {"values": {"ok": "{{ nodes.fetch.output.body.ok }}"}}},
    ]
    workspace = user.memberships.get().workspace
    workflow = workflow_create(actor=user, workspace=workspace, data={"name": "Call then transform", "nodes": nodes})
    for name, topology in TOPOLOGIES.items():
        gaps, wall = measure(workflow, user, topology)
        print(
            f"{name}: call end → next step start over {RUNS} runs: median {statistics.median(gaps) * 1000:.0f} ms, "
            f"p95 {percentile(gaps, 0.95) * 1000:.0f} ms, max {max(gaps) * 1000:.0f} ms; all runs {wall:.1f} s"
        )
    server.shutdown()


if __name__ == "__main__":
    main()
