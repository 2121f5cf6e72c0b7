"""Runs and steps added to their rollups set-based, in PostgreSQL: one INSERT … SELECT … GROUP BY …
ON CONFLICT DO UPDATE per table and batch of events, the histograms made and merged by the SQL
functions of migration 0004. What they add is exactly what analytics.services.recording documents
(a run's outcome, duration, queue wait, tokens and cost; a step's outcome, retries, crash
recoveries, duration, tokens and cost), in each of the event's minute, hour and UTC day.

Why in SQL: a run and its five steps are 18 rollup rows to change; in Python (build, merge and
encode dicts and JSON histograms) that cost more than a millisecond of CPU per run, set-based it
costs a fraction of that, and nothing crosses the connection but the batch's ids."""

from django.db import connection

from analytics.models import NO_WORKFLOW

# The event's buckets: each granularity with its date_trunc unit, in UTC.
GRAINS = "(VALUES ('minute'), ('hour'), ('day')) AS grain (granularity)"
NUMBER = "coalesce(nullif(event.data->>'{name}', '')::double precision, 0)"
# Each event's figures are read out of its JSON once (a materialized CTE), then counted in each of
# its three buckets.
IN_BUCKETS = f"""
part AS (
    SELECT grain.granularity, date_trunc(grain.granularity, fact.moment) AT TIME ZONE 'UTC' AS bucket, fact.*
    FROM fact CROSS JOIN {GRAINS}
)"""  # noqa: S608 - made of this module's constants

RUNS = f"""
WITH fact AS MATERIALIZED (
    SELECT event.ts AT TIME ZONE 'UTC' AS moment, event.workspace_id,
           coalesce(event.workflow_id, %(no_workflow)s::uuid) AS workflow_id,
           coalesce(event.data->>'status' = 'succeeded', false)::int AS succeeded,
           coalesce(event.data->>'status' = 'failed', false)::int AS failed,
           coalesce(event.data->>'status' = 'cancelled', false)::int AS cancelled,
           coalesce((event.data->>'timed_out')::boolean, false)::int AS timed_out,
           {NUMBER.format(name="duration_ms")} AS duration,
           extract(
               epoch FROM nullif(event.data->>'started_at', '')::timestamptz
               - nullif(event.data->>'created_at', '')::timestamptz
           ) * 1000 AS wait,
           {NUMBER.format(name="tokens_in")}::bigint AS tokens_in,
           {NUMBER.format(name="tokens_out")}::bigint AS tokens_out,
           {NUMBER.format(name="cost")} AS cost
    FROM analytics_event AS event
    WHERE event.id = ANY(%(ids)s) AND event.type = 'run.finished'
), {IN_BUCKETS}
INSERT INTO analytics_rollup (
    granularity, bucket, workspace_id, workflow_id, succeeded, failed, cancelled, timed_out,
    duration_ms_sum, duration_ms_max, duration_histogram, queue_wait_histogram, tokens_in, tokens_out, cost
)
SELECT granularity, bucket, workspace_id, workflow_id,
       sum(succeeded), sum(failed), sum(cancelled), sum(timed_out),
       sum(duration), max(duration), analytics_histogram(array_agg(duration)), analytics_histogram(array_agg(wait)),
       sum(tokens_in), sum(tokens_out), sum(cost)
FROM part
GROUP BY granularity, bucket, workspace_id, workflow_id
ON CONFLICT (granularity, workspace_id, bucket, workflow_id) DO UPDATE SET
    succeeded = analytics_rollup.succeeded + excluded.succeeded,
    failed = analytics_rollup.failed + excluded.failed,
    cancelled = analytics_rollup.cancelled + excluded.cancelled,
    timed_out = analytics_rollup.timed_out + excluded.timed_out,
    duration_ms_sum = analytics_rollup.duration_ms_sum + excluded.duration_ms_sum,
    duration_ms_max = greatest(analytics_rollup.duration_ms_max, excluded.duration_ms_max),
    duration_histogram = analytics_histogram_merge(analytics_rollup.duration_histogram, excluded.duration_histogram),
    queue_wait_histogram = analytics_histogram_merge(
        analytics_rollup.queue_wait_histogram, excluded.queue_wait_histogram
    ),
    tokens_in = analytics_rollup.tokens_in + excluded.tokens_in,
    tokens_out = analytics_rollup.tokens_out + excluded.tokens_out,
    cost = analytics_rollup.cost + excluded.cost
"""  # noqa: S608 - made of this module's constants; the values are parameters

STEPS = f"""
WITH fact AS MATERIALIZED (
    SELECT event.id, event.ts AT TIME ZONE 'UTC' AS moment, event.workspace_id,
           coalesce(event.workflow_id, %(no_workflow)s::uuid) AS workflow_id,
           coalesce(event.data->>'key', '') AS node_key,
           coalesce(event.data->>'type', '') AS node_type,
           coalesce(event.data->>'status' = 'succeeded', false)::int AS succeeded,
           coalesce(event.data->>'status' = 'failed', false)::int AS failed,
           greatest(coalesce(nullif((event.data->>'attempt')::bigint, 0), 1) - 1, 0) AS retries,
           {NUMBER.format(name="crashes")}::bigint AS crashes,
           {NUMBER.format(name="duration_ms")} AS duration,
           {NUMBER.format(name="tokens_in")}::bigint AS tokens_in,
           {NUMBER.format(name="tokens_out")}::bigint AS tokens_out,
           {NUMBER.format(name="cost")} AS cost
    FROM analytics_event AS event
    WHERE event.id = ANY(%(ids)s) AND event.type = 'step.finished'
), {IN_BUCKETS}
INSERT INTO analytics_steprollup (
    granularity, bucket, workspace_id, workflow_id, node_key, node_type, succeeded, failed, retries, crashes,
    duration_ms_sum, duration_ms_max, duration_histogram, tokens_in, tokens_out, cost
)
SELECT granularity, bucket, workspace_id, workflow_id, node_key, (array_agg(node_type ORDER BY id DESC))[1],
       sum(succeeded), sum(failed), sum(retries), sum(crashes),
       sum(duration), max(duration), analytics_histogram(array_agg(duration)),
       sum(tokens_in), sum(tokens_out), sum(cost)
FROM part
GROUP BY granularity, bucket, workspace_id, workflow_id, node_key
ON CONFLICT (granularity, workspace_id, bucket, workflow_id, node_key) DO UPDATE SET
    node_type = excluded.node_type,
    succeeded = analytics_steprollup.succeeded + excluded.succeeded,
    failed = analytics_steprollup.failed + excluded.failed,
    retries = analytics_steprollup.retries + excluded.retries,
    crashes = analytics_steprollup.crashes + excluded.crashes,
    duration_ms_sum = analytics_steprollup.duration_ms_sum + excluded.duration_ms_sum,
    duration_ms_max = greatest(analytics_steprollup.duration_ms_max, excluded.duration_ms_max),
    duration_histogram = analytics_histogram_merge(
        analytics_steprollup.duration_histogram, excluded.duration_histogram
    ),
    tokens_in = analytics_steprollup.tokens_in + excluded.tokens_in,
    tokens_out = analytics_steprollup.tokens_out + excluded.tokens_out,
    cost = analytics_steprollup.cost + excluded.cost
"""  # noqa: S608 - made of this module's constants; the values are parameters


def runs_and_steps_add(event_ids: list[int]) -> None:
    """Add the run.finished and step.finished events among `event_ids` to Rollup and StepRollup."""
    if not event_ids:
        return
    parameters = {"ids": event_ids, "no_workflow": str(NO_WORKFLOW)}
    with connection.cursor() as cursor:
        cursor.execute(RUNS, parameters)
        cursor.execute(STEPS, parameters)
