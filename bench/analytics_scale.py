"""Analytics at scale (issue 21's benchmark): a million runs and five million steps over 90 days, as
raw analytics events, rolled up, then the overview and a timeseries read from the rollups against
the same answers computed from the raw events in the same run.

    .venv/bin/python bench/analytics_scale.py [--runs 1000000] [--sample 20000] [--keep]

1. Generates `--runs` run.finished events and 5 step.finished events per run over the 90 days
   before the current hour, in ~200 workflows of 20 workspaces (popularity skewed), with log-normal
   durations and queue waits, failures (some timed out) with error types and messages, tokens and
   cost for the document nodes: written with COPY, `rolled_up = false`, in the order the run-events
   task records them (a run's steps, then the run, as it finishes).
2. Rollups: `rollups_catch_up()` over the first `--sample` runs' events (all of them if `--runs` is
   no more than that), timed: wall, this process's CPU and the CPU of the PostgreSQL backend that
   served it (read from /proc), per run (a run and its 5 steps) and per event; target ≤ 0.2 ms of
   CPU per finished run. The rest are then added by the same `rollups_catch_up()`, timed as well.
3. The overview over 30 days (one workspace, and all) and one workflow's timeseries over 7 days by
   hour (runs and duration_p95), `analytics.selectors` over `Rollup` rows, median of `--repeat`
   after a warm-up; the same answers from the raw events (counts by status, `percentile_disc`,
   which is the nearest-rank percentile, per-hour counts), timed the same way.
4. Prints: query, rollup ms, raw ms, raw/rollup, the targets (overview ≤ 200 ms, timeseries ≤ 100 ms,
   at least 20 times faster than raw), the largest percentile error against the exact value (bound 1.98 %,
   analytics.histograms) and whether every count is equal.
5. An insights pass (`analytics.services.insights.insights_refresh`).

Database `bench_analytics` (BENCH_DATABASE_URL overrides it), made afresh and dropped at the end
unless `--keep`.
"""

import argparse
import json
import math
import multiprocessing
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a file, this script has bench/ on sys.path, not the project that holds bench/ and the apps.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import configure, recreate_database

DATABASE_URL, _ = configure(database="bench_analytics", redis_db=3)
DAYS = 90
WORKSPACES = 20
WORKFLOWS_PER_WORKSPACE = 10
STEPS_PER_RUN = 5
CHUNK_RUNS = 10_000
SEED = 21
NODE_TYPES = ("http_request", "transform", "document", "condition", "email", "text")
TRIGGERS = ("manual", "api", "schedule", "webhook")
ERRORS = (
    ("timeout", "step '{key}' took {n} s, over its limit of 30 s"),
    ("http_error", "the server answered {code} for https://api.example.com/v1/items/{n}"),
    ("expression_error", "'{key}' is undefined in the expression of step '{key}'"),
    ("provider_error", "rate limited by the provider, retry after {n} ms"),
)
RUN_COLUMNS = "type, subject, workspace_id, workflow_id, ts, data, recorded_at, rolled_up"


# --- 1. the events --------------------------------------------------------------------------------


def workflows_plan(seed: int) -> list[dict]:
    """~200 workflows: workspace, id, a median run duration, popularity (Zipf-like) and 5 nodes."""
    rng = random.Random(seed)
    workspaces = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(WORKSPACES)]
    plans = []
    for index in range(WORKSPACES * WORKFLOWS_PER_WORKSPACE):
        nodes = [(f"node_{position}", rng.choice(NODE_TYPES), rng.uniform(0.2, 3)) for position in range(STEPS_PER_RUN)]
        plans.append(
            {
                "workspace": workspaces[index % WORKSPACES],
                "workflow": str(uuid.UUID(int=rng.getrandbits(128))),
                "median_ms": math.exp(rng.uniform(math.log(150), math.log(30_000))),
                "weight": 1 / (index + 1) ** 0.8,
                "nodes": nodes,
            }
        )
    return plans


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _copy_text(value: str) -> str:
    """A value in COPY's text format (JSON escapes its own tabs and newlines; backslashes double)."""
    return value.replace("\\", "\\\\")


def events_chunk(task: tuple) -> str:
    """The COPY text of runs [first, last) and their steps: finish times spread evenly over the span."""
    first, last, total, start, span, seed, now_iso = task
    rng = random.Random(seed * 1_000_003 + first)
    plans = workflows_plan(seed)
    cumulative, running = [], 0.0
    for plan in plans:
        running += plan["weight"]
        cumulative.append(running)
    chosen = rng.choices(plans, cum_weights=cumulative, k=last - first)
    lines = []
    for offset, plan in enumerate(chosen):
        index = first + offset
        finished = start + (index + rng.random()) / total * span
        duration = rng.lognormvariate(math.log(plan["median_ms"]), 1.0)
        wait = rng.lognormvariate(math.log(40), 1.2)
        started = finished - duration / 1000
        created = started - wait / 1000
        roll = rng.random()
        status = "succeeded" if roll < 0.9 else "failed" if roll < 0.97 else "cancelled"
        run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        where = f"{plan['workspace']}\t{plan['workflow']}"
        failing = rng.randrange(STEPS_PER_RUN) if status == "failed" else -1
        weights = [weight * rng.lognormvariate(0, 0.3) for _, _, weight in plan["nodes"]]
        scale, moment = duration / sum(weights), started
        usage = {"tokens_in": 0, "tokens_out": 0, "cost": 0.0}
        retries = crashes = 0
        error_type = None
        for position, ((key, type_, _), weight) in enumerate(zip(plan["nodes"], weights, strict=True)):
            step_ms = weight * scale
            moment += step_ms / 1000
            step = {
                "key": key,
                "type": type_,
                "status": "failed" if position == failing else "succeeded",
                "attempt": 1 if rng.random() < 0.97 else rng.randint(2, 3),
                "crashes": 1 if rng.random() < 0.002 else 0,
                "duration_ms": round(step_ms, 3),
                "tokens_in": 0,
                "tokens_out": 0,
                "cost": 0.0,
                "error_type": None,
                "host": "api.example.com" if type_ == "http_request" else None,
            }
            retries, crashes = retries + step["attempt"] - 1, crashes + step["crashes"]
            if type_ == "document":
                step["tokens_in"] = rng.randint(200, 4000)
                step["tokens_out"] = rng.randint(50, 1500)
                step["cost"] = round((step["tokens_in"] * 3 + step["tokens_out"] * 15) / 1e6, 6)
                for name in usage:
                    usage[name] += step[name]
            if position == failing:
                error_type, template = rng.choice(ERRORS)
                step["error_type"] = error_type
            data = _copy_text(json.dumps(step))
            lines.append(f"step.finished\t{run_id}:{key}\t{where}\t{_iso(moment)}\t{data}\t{now_iso}\tf\n")
        run = {
            "status": status,
            "timed_out": error_type == "timeout",
            "trigger": rng.choice(TRIGGERS),
            "created_at": _iso(created),
            "started_at": _iso(started),
            "duration_ms": round(duration, 3),
            "error_type": error_type,
            "error_message": template.format(key=plan["nodes"][failing][0], n=rng.randint(1, 99_999), code=503)
            if error_type
            else None,
            **usage,
            "retries": retries,
            "crashes": crashes,
        }
        run["cost"] = round(run["cost"], 6)
        data = _copy_text(json.dumps(run))
        lines.append(f"run.finished\t{run_id}\t{where}\t{_iso(finished)}\t{data}\t{now_iso}\tf\n")
    return "".join(lines)


def events_load(connection, *, runs: int, end: datetime) -> float:
    """COPY the events into analytics_event (its indexes dropped during the load and made again after,
    which is quicker than keeping them up to date row by row). Returns seconds."""
    started = time.perf_counter()
    start = (end - timedelta(days=DAYS)).timestamp()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'analytics_event'::regclass AND contype = 'u'"
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'analytics_event' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'analytics_event'::regclass)"
        )
        indexes = cursor.fetchall()
        for name, _ in constraints:
            cursor.execute(f'ALTER TABLE analytics_event DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        tasks = [
            (first, min(first + CHUNK_RUNS, runs), runs, start, DAYS * 86400.0, SEED, end.isoformat())
            for first in range(0, runs, CHUNK_RUNS)
        ]
        copying = cursor.copy(f"COPY analytics_event ({RUN_COLUMNS}) FROM STDIN")
        with multiprocessing.get_context("fork").Pool(2) as pool, copying as copy:
            for text in pool.imap(events_chunk, tasks):
                copy.write(text)
        for name, definition in constraints:
            cursor.execute(f'ALTER TABLE analytics_event ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            cursor.execute(definition)
    with connection.cursor() as cursor:  # autovacuum is off here: plan from real statistics
        cursor.execute("VACUUM ANALYZE analytics_event")
    return time.perf_counter() - started


# --- 2. the rollups -------------------------------------------------------------------------------


def _backend_cpu(connection) -> float:
    """CPU seconds the PostgreSQL backend of `connection` has used (same machine: /proc)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def catch_up_timed(connection) -> dict:
    """rollups_catch_up() over the pending events, timed: wall, this process's CPU, the backend's."""
    from analytics.services.recording import rollups_catch_up

    wall, cpu, backend = time.perf_counter(), time.process_time(), _backend_cpu(connection)
    events = rollups_catch_up()
    return {
        "events": events,
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "backend": _backend_cpu(connection) - backend,
    }


def rollups_build(connection, *, runs: int, sample: int) -> list[tuple[str, int, dict]]:
    """The rollups of every event by rollups_catch_up: the first `sample` runs' events on their own
    (the others held back by marking them added meanwhile), then the rest. [(label, runs, timing)]."""
    if runs <= sample:
        return [("all", runs, catch_up_timed(connection))]
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM analytics_event ORDER BY id OFFSET %s LIMIT 1", [sample * (STEPS_PER_RUN + 1)])
        boundary = cursor.fetchone()[0]
        cursor.execute("UPDATE analytics_event SET rolled_up = true WHERE id >= %s", [boundary])
        cursor.execute("VACUUM ANALYZE analytics_event")
    first = catch_up_timed(connection)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE analytics_event SET rolled_up = false WHERE id >= %s", [boundary])
        cursor.execute("VACUUM ANALYZE analytics_event")
    return [("sample", sample, first), ("rest", runs - sample, catch_up_timed(connection))]


# --- 3. the questions -----------------------------------------------------------------------------


def timed(function, repeat: int) -> tuple[float, object]:
    """(median milliseconds of `repeat` calls after a warm-up call, the last answer)."""
    answer = function()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), answer


RAW_RUNS = """
    SELECT count(*) FILTER (WHERE data->>'status' = 'succeeded'),
           count(*) FILTER (WHERE data->>'status' = 'failed'),
           count(*) FILTER (WHERE data->>'status' = 'cancelled'),
           count(*) FILTER (WHERE (data->>'timed_out')::boolean),
           percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY (data->>'duration_ms')::float8),
           percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY extract(epoch FROM
               (data->>'started_at')::timestamptz - (data->>'created_at')::timestamptz) * 1000),
           max((data->>'duration_ms')::float8),
           sum((data->>'tokens_in')::bigint), sum((data->>'tokens_out')::bigint)
      FROM analytics_event
     WHERE type = 'run.finished' AND ts >= %s AND ts < %s {where}
"""
RAW_SERIES = """
    SELECT date_trunc('hour', ts) AS hour{columns}
      FROM analytics_event
     WHERE type = 'run.finished' AND workflow_id = %s AND ts >= %s AND ts < %s
     GROUP BY hour
"""
RAW_COUNT = ", count(*)"
RAW_P95 = ", percentile_disc(0.95) WITHIN GROUP (ORDER BY (data->>'duration_ms')::float8)"


def raw_overview(connection, span, workspace: str | None) -> dict:
    where, params = ("AND workspace_id = %s", [workspace]) if workspace else ("", [])
    with connection.cursor() as cursor:
        cursor.execute(RAW_RUNS.format(where=where), [span.start, span.end, *params])
        row = cursor.fetchone()
    succeeded, failed, cancelled, timed_out, durations, waits, longest, tokens_in, tokens_out = row
    return {
        "runs": succeeded + failed + cancelled,
        "succeeded": succeeded,
        "failed": failed,
        "cancelled": cancelled,
        "timed_out": timed_out,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "duration_max": longest,
        "duration_p50": durations[0],
        "duration_p95": durations[1],
        "duration_p99": durations[2],
        "queue_wait_p50": float(waits[0]),
        "queue_wait_p95": float(waits[1]),
    }


def raw_series(connection, span, workflow: str, *, p95: bool | None = None) -> dict:
    """Per hour: (runs, p95 duration) from the raw events; with `p95` False or True only one of them is
    computed (the other is None)."""
    columns = {None: RAW_COUNT + RAW_P95, False: RAW_COUNT, True: RAW_P95}[p95]
    with connection.cursor() as cursor:
        cursor.execute(RAW_SERIES.format(columns=columns), [workflow, span.start, span.end])
        if p95 is None:
            return {hour: (count, percentile) for hour, count, percentile in cursor.fetchall()}
        return {hour: (None, value) if p95 else (value, None) for hour, value in cursor.fetchall()}


PERCENTILES = ("duration_p50", "duration_p95", "duration_p99", "queue_wait_p50", "queue_wait_p95")
COUNTS = ("runs", "succeeded", "failed", "cancelled", "timed_out", "tokens_in", "tokens_out")


def _error(estimate: float | None, exact: float | None) -> float:
    if estimate is None or exact is None:
        return 0.0 if estimate == exact else math.inf
    return abs(estimate - exact) / exact if exact else abs(estimate)


def overview_compared(ours: dict, raw: dict) -> tuple[float, bool]:
    """(the largest relative error of the percentiles, whether every count is equal)."""
    error = max(_error(ours[name], raw[name]) for name in PERCENTILES)
    equal = all(ours[name] == raw[name] for name in COUNTS) and ours["duration_max"] == raw["duration_max"]
    return error, equal


def series_compared(
    runs: list[dict], p95: list[dict], raw: dict, *, counts: bool = True, percentiles: bool = True
) -> tuple[float, bool]:
    """(the largest relative error of the p95 points, whether every count is equal) against `raw`'s
    points, comparing the counts, the percentiles or both."""
    error, equal = 0.0, True
    for count, percentile in zip(runs, p95, strict=True):
        exact_count, exact_p95 = raw.get(count["t"], (0, None))
        if counts:
            equal = equal and count["value"] == exact_count
        if percentiles:
            error = max(error, _error(percentile["value"], exact_p95))
    return error, equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs (steps: 5 per run)")
    parser.add_argument("--sample", type=int, default=20_000, help="runs whose rollups are timed on their own")
    parser.add_argument("--repeat", type=int, default=5, help="timings per question; the median is printed")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time the questions on a kept database (its events and rollups as they are)",
    )
    args = parser.parse_args()

    if not args.reuse:
        recreate_database(DATABASE_URL)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from analytics.models import Event

    call_command("migrate", interactive=False, verbosity=0)
    plans = workflows_plan(SEED)
    try:
        if args.reuse:
            latest = Event.objects.order_by("-ts").values_list("ts", flat=True).first()
            if latest is None:
                sys.exit(f"--reuse: no events in {DATABASE_URL}; run once with --keep first")
            end = latest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            print(f"reusing {DATABASE_URL}: {Event.objects.filter(type='run.finished').count():,} runs, up to {end}")
        else:
            end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            build(connection, args, plans, end)
        questions_timed(connection, args, plans, end)
    finally:
        connection.close()
        if not args.keep and not args.reuse:
            drop_database()


def build(connection, args, plans: list[dict], end: datetime) -> None:
    """1 and 2: the events written, then rolled up (timed)."""
    from analytics.models import Rollup

    loaded = events_load(connection, runs=args.runs, end=end)
    events = args.runs * (STEPS_PER_RUN + 1)
    print(f"{args.runs:,} runs, {args.runs * STEPS_PER_RUN:,} steps, {len(plans)} workflows in {WORKSPACES} workspaces")
    print(f"events written (COPY, indexes made after, VACUUM ANALYZE): {loaded:.1f} s, {events / loaded:,.0f}/s")

    print("\nrollups_catch_up:")
    for label, runs, timing in rollups_build(connection, runs=args.runs, sample=args.sample):
        print(
            f"  {label}: {runs:,} runs ({timing['events']:,} events) in {timing['wall']:.1f} s wall; "
            f"per run {timing['wall'] / runs * 1000:.3f} ms wall, {timing['cpu'] / runs * 1000:.3f} ms CPU "
            f"(this process; the PostgreSQL backend {timing['backend'] / runs * 1000:.3f} ms more); "
            f"per event {timing['cpu'] / timing['events'] * 1000:.3f} ms CPU"
        )
    with connection.cursor() as cursor:
        for table in ("analytics_rollup", "analytics_workspacerollup", "analytics_steprollup", "analytics_tally"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    for granularity in Rollup.Granularity.values:
        print(f"  {granularity} rollup rows: {Rollup.objects.filter(granularity=granularity).count():,}")


def questions_timed(connection, args, plans: list[dict], end: datetime) -> None:
    """3, 4 and 5: the questions from the rollups against the raw events, then the insights pass."""
    from analytics import selectors
    from analytics.histograms import RELATIVE_ERROR_BOUND
    from analytics.services.insights import insights_refresh

    month = selectors.Range(end - timedelta(days=30), end)
    week = selectors.Range(end - timedelta(days=7), end)
    busiest = plans[0]
    every_workspace = sorted({plan["workspace"] for plan in plans})
    rows: list[tuple] = []
    for label, scope, workspace in (
        ("overview 30 d, one workspace", selectors.Scope([busiest["workspace"]]), busiest["workspace"]),
        ("overview 30 d, all workspaces", selectors.Scope(every_workspace), None),
    ):
        ours_ms, ours = timed(lambda scope=scope: selectors.overview(scope, month, now=end), args.repeat)
        raw_ms, raw = timed(lambda workspace=workspace: raw_overview(connection, month, workspace), args.repeat)
        rows.append((label, ours_ms, raw_ms, 200, *overview_compared(ours, raw), ours["runs"]))
    workflow_scope = selectors.Scope(every_workspace, workflow=busiest["workflow"])

    def series(metric: str) -> list[dict]:
        return selectors.timeseries(workflow_scope, week, metric=metric, bucket="hour", now=end)["points"]

    runs_ms, runs_points = timed(lambda: series("runs"), args.repeat)
    p95_ms, p95_points = timed(lambda: series("duration_p95"), args.repeat)
    raw_runs_ms, raw_runs = timed(lambda: raw_series(connection, week, busiest["workflow"], p95=False), args.repeat)
    raw_p95_ms, raw_p95 = timed(lambda: raw_series(connection, week, busiest["workflow"], p95=True), args.repeat)
    raw_both_ms, raw_both = timed(lambda: raw_series(connection, week, busiest["workflow"]), args.repeat)
    total = sum(point["value"] for point in runs_points)
    _, runs_equal = series_compared(runs_points, p95_points, raw_runs, percentiles=False)
    p95_error, _ = series_compared(runs_points, p95_points, raw_p95, counts=False)
    both_error, both_equal = series_compared(runs_points, p95_points, raw_both)
    label = "timeseries 7 d by hour, busiest workflow"
    rows.append((f"{label}: runs", runs_ms, raw_runs_ms, 100, 0.0, runs_equal, total))
    rows.append((f"{label}: duration_p95", p95_ms, raw_p95_ms, 100, p95_error, True, total))
    rows.append(
        (f"{label}: both (two calls; one raw query)", runs_ms + p95_ms, raw_both_ms, 100, both_error, both_equal, total)
    )

    print(
        f"\nmedian of {args.repeat} after a warm-up; percentile error against percentile_disc "
        f"(nearest rank), bound {RELATIVE_ERROR_BOUND:.2%}"
    )
    print("| query | runs | rollup ms | raw ms | raw/rollup | target met | max percentile error | counts equal |")
    print("|---|---|---|---|---|---|---|---|")
    for label, ours_ms, raw_ms, limit, error, equal, runs in rows:
        ratio = raw_ms / ours_ms
        met = ours_ms <= limit and ratio >= 20
        print(
            f"| {label} | {runs:,} | {ours_ms:.1f} | {raw_ms:.1f} | {ratio:.1f} | "
            f"{'yes' if met else 'no'} (<= {limit} ms, >= 20 times) | {error:.2%} "
            f"({'within' if error <= RELATIVE_ERROR_BOUND else 'OVER'}) | {'yes' if equal else 'NO'} |"
        )

    started, cpu = time.perf_counter(), time.process_time()
    insights_refresh()
    print(f"\ninsights_refresh: {time.perf_counter() - started:.2f} s wall, {time.process_time() - cpu:.2f} s CPU")


def drop_database() -> None:
    import psycopg

    server, name = DATABASE_URL.rsplit("/", 1)
    with psycopg.connect(server + "/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')


if __name__ == "__main__":
    main()
