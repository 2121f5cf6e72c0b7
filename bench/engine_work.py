"""What one trigger call and one step execution cost PostgreSQL and this process, in counts that do
not drift with the machine's load: WAL bytes and buffer accesses, next to CPU time.

    .venv/bin/python bench/engine_work.py

Timings on a shared machine can move by half between two runs (bench/engine_overhead.py takes
medians for that); WAL and buffer counts move by a few percent, so they tell whether a change to
the engine's statements or indexes does less work. No worker runs: the trigger calls' step messages
are kept in this process and executed here, one by one, as a worker would. Uses a fresh database
(BENCH_DATABASE_URL, default dwc_work; BENCH_REDIS_URL for the broker the calls publish to, which is
flushed after). Needs a superuser connection (CHECKPOINT).
"""

import sys
import time
import uuid
from pathlib import Path

# Run as a file, this script has bench/ on sys.path, not the project that holds bench/ and the apps.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import configure, recreate_database

DATABASE_URL, _ = configure(database="dwc_work")
CALLS = 2000
# Statistics reach pg_stat_database from each backend at most every 0.5 s or so.
STATS_DELAY_SECONDS = 1.0


def main() -> None:
    recreate_database(DATABASE_URL)
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from accounts.services import user_register
    from workflows.engine import dispatch, execute
    from workflows.services.runs import run_trigger
    from workflows.services.workflows import workflow_create

    call_command("migrate", verbosity=0)

    def counters() -> tuple[int, int, float]:
        time.sleep(STATS_DELAY_SECONDS)
        with connection.cursor() as cursor:
            # Each phase starts right after a checkpoint, so that the full-page images the first
            # change of each page writes are the same from run to run.
            cursor.execute("CHECKPOINT")
            cursor.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
            wal = int(cursor.fetchone()[0])
            cursor.execute("SELECT blks_hit + blks_read FROM pg_stat_database WHERE datname = current_database()")
            buffers = int(cursor.fetchone()[0])
        return wal, buffers, time.process_time()

    queued: list = []
    dispatch.send = queued.extend  # the step messages, executed below instead of by a worker
    user = user_register(
        email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password=uuid.uuid4().hex + "-Aa1", name="B"
    )
    workspace = user.memberships.get().workspace
    single = {"name": "Single", "nodes": [{"key": "n", "type": "transform", "config": {"values": {}}}]}
    workflow = workflow_create(actor=user, workspace=workspace, data=single)

    def execute_queued() -> None:
        for item in queued:
            execute.execute_step(item.step_id, item.attempt, worker="bench", run_id=item.run_id)
        queued.clear()

    for _ in range(50):  # warm up: statements prepared, caches filled
        run_trigger(workflow=workflow, input={}, trigger="api", actor=user)
    execute_queued()

    before = counters()
    for _ in range(CALLS):
        run_trigger(workflow=workflow, input={}, trigger="api", actor=user)
    triggered = counters()
    execute_queued()
    executed = counters()
    redis.Redis.from_url(settings.REDIS_URL).flushdb()

    for label, start, end in (("trigger call", before, triggered), ("step execution", triggered, executed)):
        wal, buffers = (end[0] - start[0]) / CALLS, (end[1] - start[1]) / CALLS
        cpu = (end[2] - start[2]) / CALLS * 1000  # process_time does not count the sleeps
        print(f"{label}: {wal:,.0f} WAL bytes, {buffers:.0f} buffer accesses, {cpu:.2f} ms CPU of this process")


if __name__ == "__main__":
    main()
