"""Engine overhead against raw Celery, on the same broker, database and 2 worker processes.

    .venv/bin/python bench/engine_overhead.py

(a) a 20-node chain of no-op transform nodes, run 20 times, against a Celery chain of 20 no-op tasks;
(b) 500 single-node runs (started one API-style call at a time) against 500 no-op tasks, and
(b') the same 500 runs started as one batch (runs_trigger_many). Prints the medians and the ratio
ours/raw. (b) is also set against raw Celery doing the least durable work a run needs: the caller
commits a job row, then sends a task that marks it done in a commit of its own.
A no-op task signals that it ran by incrementing a Redis counter on its worker's one
connection (bench/celery_tasks.py; before 2026-11-22 it opened a connection per task, which made
raw Celery look twice as slow in (b)).
Needs PostgreSQL and Redis on localhost (BENCH_DATABASE_URL, BENCH_REDIS_URL override them).
"""

import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

# Run as a file, this script has bench/ on sys.path, not the project that holds bench/ and the apps.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import PROJECT, configure, create_database

DATABASE_URL, REDIS_URL = configure()
POLL_SECONDS = 0.002
# Checking 500 runs is a database query: polled every 2 ms it would compete with the workers.
BATCH_POLL_SECONDS = 0.05
# Rounds of (b) and (b'), each next to a raw round: on a shared machine one round can take twice
# another, and the median of five steadies the ratio.
ROUNDS = 5


def _all_succeeded(run_ids) -> bool:
    from workflows.models import Run

    return Run.objects.filter(pk__in=run_ids, status="succeeded").count() == len(run_ids)


def _all_done(job_ids) -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_job WHERE id = ANY(%s::uuid[]) AND done", [job_ids])
        return cursor.fetchone()[0] == len(job_ids)


def start_workers(count: int) -> list[subprocess.Popen]:
    workers = []
    for index in range(count):
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--include",
            "bench.celery_tasks",
        ]
        args += ["--queues", "engine,calls,generation,notifications", "--without-mingle", "--without-gossip"]
        args += ["--hostname", f"bench{index}@%h", "--loglevel", "WARNING"]
        workers.append(subprocess.Popen(args, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return workers


def wait_until(predicate, timeout: float = 120.0, poll: float = POLL_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish")
        time.sleep(poll)


def main() -> None:
    create_database(DATABASE_URL)
    import django

    django.setup()
    import redis
    from celery import chain
    from django.core.management import call_command
    from django.db import connection

    from accounts.services import user_register
    from bench.celery_tasks import mark_done, noop
    from workflows.models import Run, RunEvent, StepRun
    from workflows.services.runs import run_trigger, runs_trigger_many
    from workflows.services.workflows import workflow_create

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_job (id uuid PRIMARY KEY, done boolean NOT NULL)")
        cursor.execute("TRUNCATE bench_job")
        # The runs of earlier invocations go as the baseline's jobs do. Deleted instead, they would
        # stay behind as dead rows wherever autovacuum is off (as on the CI machine), and every
        # invocation would insert into bigger indexes than the one before.
        tables = [model._meta.db_table for model in (Run, StepRun, RunEvent)]
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    user = user_register(
        email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password=uuid.uuid4().hex + "-Aa1", name="Bench"
    )
    workspace = user.memberships.get().workspace
    chain_nodes = [{"key": f"n{i}", "type": "transform", "config": {"values": {"i": i}}} for i in range(20)]
    chain_workflow = workflow_create(actor=user, workspace=workspace, data={"name": "Chain 20", "nodes": chain_nodes})
    single = workflow_create(
        actor=user,
        workspace=workspace,
        data={"name": "Single", "nodes": [{"key": "n", "type": "transform", "config": {"values": {}}}]},
    )

    workers = start_workers(2)
    try:
        time.sleep(4)  # let both workers connect
        # Warm up both paths once.
        run, _ = run_trigger(workflow=chain_workflow, input={}, trigger="api", actor=user)
        wait_until(lambda: Run.objects.filter(pk=run.pk, status="succeeded").exists())
        noop.delay("warm")
        wait_until(lambda: broker.get("warm") is not None)

        ours_chain, raw_chain = [], []
        for index in range(20):
            started = time.perf_counter()
            run, _ = run_trigger(workflow=chain_workflow, input={}, trigger="api", actor=user)
            wait_until(lambda run=run: Run.objects.filter(pk=run.pk, status__in=["succeeded", "failed"]).exists())
            ours_chain.append(time.perf_counter() - started)
            key = f"chain-{index}"
            started = time.perf_counter()
            chain(*[noop.si() for _ in range(19)], noop.si(key)).apply_async()
            wait_until(lambda key=key: broker.get(key) is not None)
            raw_chain.append(time.perf_counter() - started)
        assert not Run.objects.filter(workflow=chain_workflow).exclude(status="succeeded").exists()

        ours_many, ours_batch, raw_many, durable_many = [], [], [], []
        for batch in range(ROUNDS):
            started = time.perf_counter()
            runs = [run_trigger(workflow=single, input={}, trigger="api", actor=user)[0].pk for _ in range(500)]
            wait_until(lambda runs=runs: _all_succeeded(runs), poll=BATCH_POLL_SECONDS)
            ours_many.append(time.perf_counter() - started)
            started = time.perf_counter()
            runs = [run.pk for run in runs_trigger_many(workflow=single, inputs=[{}] * 500, trigger="api", actor=user)]
            wait_until(lambda runs=runs: _all_succeeded(runs), poll=BATCH_POLL_SECONDS)
            ours_batch.append(time.perf_counter() - started)
            key = f"many-{batch}"
            started = time.perf_counter()
            for _ in range(500):
                noop.delay(key)
            wait_until(lambda key=key: int(broker.get(key) or 0) == 500, poll=BATCH_POLL_SECONDS)
            raw_many.append(time.perf_counter() - started)
            started = time.perf_counter()
            jobs = []
            for _ in range(500):
                job = str(uuid.uuid4())
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO bench_job (id, done) VALUES (%s, false)", [job])
                mark_done.delay(job)
                jobs.append(job)
            wait_until(lambda jobs=jobs: _all_done(jobs), poll=BATCH_POLL_SECONDS)
            durable_many.append(time.perf_counter() - started)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)

    for label, ours, raw, baseline in [
        ("(a) 20-node chain, median of 20", ours_chain, raw_chain, "raw Celery"),
        (f"(b) 500 single-node runs, one trigger call each, median of {ROUNDS}", ours_many, raw_many, "raw Celery"),
        (f"(b') 500 single-node runs started as one batch, median of {ROUNDS}", ours_batch, raw_many, "raw Celery"),
        ("(b) against raw Celery with one durable job row per task", ours_many, durable_many, "raw durable"),
    ]:
        ours_median, raw_median = statistics.median(ours), statistics.median(raw)
        ratio = ours_median / raw_median
        print(f"{label}: ours {ours_median * 1000:.1f} ms, {baseline} {raw_median * 1000:.1f} ms, ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
