"""What one worker handles, for sizing (docs/operations.md "Sizing"): steps per second of one Celery
worker process group on this machine, for cheap steps and for steps that wait on a slow HTTP peer.

    .venv/bin/python bench/worker_capacity.py

(a) CPU-bound control work: RUNS runs of a 5-node transform chain, started as one batch, on one
    worker (prefork, one pool process per CPU): steps per second until the last run succeeded.
(b) I/O-bound steps: RUNS runs of one http_request to a local server answering after 200 ms, on one
    worker of 8 threads, then of 32 threads: calls per second (a ceiling of threads / 0.2 s).
(b) prints its ratio to that ceiling; (a) is a capacity, not a comparison (bench/engine_overhead.py
sets the engine against raw Celery). Needs PostgreSQL and Redis on localhost (BENCH_DATABASE_URL,
BENCH_REDIS_URL override them).
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import PROJECT, configure, recreate_database
from bench.servers import slow_peer

DATABASE_URL, REDIS_URL = configure(database="dwc_bench_capacity", redis_db=8)
os.environ["DWC_OUTBOUND_ALLOWLIST"] = "127.0.0.1"
RUNS = 200
CHAIN = 5
PEER_SECONDS = 0.2


def start_worker(pool: str, concurrency: int) -> subprocess.Popen:
    args = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", pool, "--concurrency", str(concurrency)]
    args += ["--queues", "engine,calls,generation,notifications", "--without-mingle", "--without-gossip"]
    args += ["--hostname", f"capacity-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "WARNING"]
    return subprocess.Popen(args, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed_batch(workflow, user, worker_args: tuple[str, int]) -> float:
    """Seconds from starting RUNS runs as one batch to the last one succeeding, on a fresh worker."""
    from workflows.models import Run
    from workflows.services.runs import runs_trigger_many

    worker = start_worker(*worker_args)
    try:
        time.sleep(4)  # the worker connects and its pool starts
        started = time.perf_counter()
        runs = runs_trigger_many(workflow=workflow, inputs=[{} for _ in range(RUNS)], trigger="api", actor=user)
        ids = [run.pk for run in runs]
        while Run.objects.filter(pk__in=ids, status="succeeded").count() < RUNS:
            if Run.objects.filter(pk__in=ids, status__in=["failed", "cancelled"]).exists():
                raise RuntimeError("a benchmark run failed")
            if time.perf_counter() - started > 600:
                raise TimeoutError("the runs did not finish in 10 minutes")
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(30)


def main() -> None:
    recreate_database(DATABASE_URL)
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    from accounts.services import user_register
    from workflows.services.workflows import workflow_create

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(REDIS_URL).flushdb()
    user = user_register(email=f"capacity-{uuid.uuid4().hex[:8]}@example.com", password=uuid.uuid4().hex + "-Aa1")
    workspace = user.memberships.get().workspace
    peer = slow_peer(PEER_SECONDS)
    chain = workflow_create(
        actor=user,
        workspace=workspace,
        data={
            "name": "Chain",
            "nodes": [{"key": f"n{i}", "type": "transform", "config": {"values": {"i": i}}} for i in range(CHAIN)],
        },
    )
    calls = workflow_create(
        actor=user,
        workspace=workspace,
        data={
            "name": "Call",
            "nodes": [
                {"key": "call", "type": "http_request", "config": {"url": f"http://127.0.0.1:{peer.server_port}/"}}
            ],
        },
    )
    cpus = os.cpu_count() or 1
    seconds = timed_batch(chain, user, ("prefork", cpus))
    rate = RUNS * CHAIN / seconds
    print(f"(a) cheap steps, one worker (prefork x{cpus}): {rate:.0f} steps/s ({RUNS} runs x {CHAIN}, {seconds:.1f} s)")
    for threads in (8, 32):
        seconds = timed_batch(calls, user, ("threads", threads))
        ceiling = threads / PEER_SECONDS
        print(
            f"(b) 200 ms calls, one worker ({threads} threads): {RUNS / seconds:.1f} calls/s, "
            f"ceiling {ceiling:.0f}/s, ratio {RUNS / seconds / ceiling:.2f} ({RUNS} runs in {seconds:.1f} s)"
        )


if __name__ == "__main__":
    main()
