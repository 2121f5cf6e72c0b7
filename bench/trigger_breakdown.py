"""Where one `run_trigger` call spends its time: each SQL statement, the commit, the Celery publish,
the realtime broadcast and the rest (Python), plus the CPU the process used per call. The call is
the role check, then one transaction: the run, its steps and events, and the audit append.

    .venv/bin/python bench/trigger_breakdown.py

No worker runs, so the runs stay queued: this measures the caller's side of benchmark (b) of
bench/engine_overhead.py alone. Needs PostgreSQL and Redis on localhost (BENCH_DATABASE_URL,
BENCH_REDIS_URL override them).
"""

import collections
import sys
import time
import uuid
from pathlib import Path

# Run as a file, this script has bench/ on sys.path, not the project that holds bench/ and the apps.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import configure, create_database

DATABASE_URL, _ = configure()
CALLS = 300


def _label(sql: str) -> str:
    words = sql.split()
    if words[0] in ("INSERT", "UPDATE", "DELETE"):
        return " ".join(words[:3] if words[0] == "INSERT" else words[:2])
    if words[0] == "WITH":
        return "WITH … INSERT (the run, its steps and events)" if '"workflows_run"' in sql else "WITH … (audit append)"
    if "FOR UPDATE" in sql or "FOR NO KEY UPDATE" in sql:
        return f"SELECT … FOR UPDATE {sql.split('FROM', 1)[1].split()[0]}"
    return f"SELECT {sql.split('FROM', 1)[1].split()[0]}" if "FROM" in sql else words[0]


def main() -> None:
    create_database(DATABASE_URL)
    import django

    django.setup()
    import psycopg
    from django.core.management import call_command
    from django.db import connection

    from accounts.services import user_register
    from workflows import events
    from workflows.engine import dispatch
    from workflows.services.runs import run_trigger
    from workflows.services.workflows import workflow_create

    call_command("migrate", verbosity=0)
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    user = user_register(email=email, password=uuid.uuid4().hex + "-Aa1", name="B")
    workspace = user.memberships.get().workspace
    single = {"name": "Single", "nodes": [{"key": "n", "type": "transform", "config": {"values": {}}}]}
    workflow = workflow_create(actor=user, workspace=workspace, data=single)
    spent: collections.Counter = collections.Counter()

    def timed(label: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started

        return wrapper

    def statement(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent[_label(sql)] += time.perf_counter() - started

    psycopg.Connection.commit = timed("COMMIT", psycopg.Connection.commit)
    dispatch.send = timed("Celery publish", dispatch.send)
    events.publish = timed("realtime broadcast (Redis PUBLISH)", events.publish)

    run_trigger(workflow=workflow, input={}, trigger="api", actor=user)  # warm up
    spent.clear()
    started, cpu = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(statement):
        for _ in range(CALLS):
            run_trigger(workflow=workflow, input={}, trigger="api", actor=user)
    wall = (time.perf_counter() - started) / CALLS * 1000
    cpu = (time.process_time() - cpu) / CALLS * 1000
    print(f"run_trigger: {wall:.2f} ms a call, {cpu:.2f} ms of this process's CPU")
    for label, seconds in spent.most_common():
        print(f"  {seconds / CALLS * 1000:6.3f} ms  {label}")
    print(f"  {wall - sum(spent.values()) / CALLS * 1000:6.3f} ms  the rest (Python)")


if __name__ == "__main__":
    main()
