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


def _added(table: str, columns: tuple[str, ...]) -> str:
    """The SET clause of an upsert that adds the excluded row's figures to the row there: sums, the
    maximum duration, merged histograms."""
    updates = []
    for column in columns:
        if column.endswith("_histogram"):
            updates.append(f"{column} = analytics_histogram_merge({table}.{column}, excluded.{column})")
        elif column == "duration_ms_max":
            updates.append(f"{column} = greatest({table}.{column}, excluded.{column})")
        else:
            updates.append(f"{column} = {table}.{column} + excluded.{column}")
    return ",\n    ".join(updates)


RUN_FIGURES = (
    "succeeded", "failed", "cancelled", "timed_out", "duration_ms_sum", "duration_ms_max",
    "duration_histogram", "queue_wait_histogram", "tokens_in", "tokens_out", "cost", "retries", "crashes",
)  # fmt: skip
# A batch's runs are summed per workflow and per workspace in one pass (grouping sets), then written
# to Rollup and WorkspaceRollup by one statement.
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
           {NUMBER.format(name="cost")} AS cost,
           {NUMBER.format(name="retries")}::bigint AS retries,
           {NUMBER.format(name="crashes")}::bigint AS crashes
    FROM analytics_event AS event
    WHERE event.id = ANY(%(ids)s::bigint[]) AND event.type = 'run.finished'
), {IN_BUCKETS},
total AS MATERIALIZED (
    SELECT granularity, bucket, workspace_id, workflow_id, grouping(workflow_id) = 1 AS whole_workspace,
           sum(succeeded) AS succeeded, sum(failed) AS failed, sum(cancelled) AS cancelled,
           sum(timed_out) AS timed_out, sum(duration) AS duration_ms_sum, max(duration) AS duration_ms_max,
           analytics_histogram(array_agg(duration)) AS duration_histogram,
           analytics_histogram(array_agg(wait)) AS queue_wait_histogram,
           sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, sum(cost) AS cost,
           sum(retries) AS retries, sum(crashes) AS crashes
    FROM part
    GROUP BY granularity, bucket, workspace_id, GROUPING SETS ((workflow_id), ())
), per_workflow AS (
    INSERT INTO analytics_rollup (granularity, bucket, workspace_id, workflow_id, {", ".join(RUN_FIGURES)})
    SELECT granularity, bucket, workspace_id, workflow_id, {", ".join(RUN_FIGURES)}
    FROM total WHERE NOT whole_workspace
    ON CONFLICT (granularity, workspace_id, bucket, workflow_id) DO UPDATE SET
    {_added("analytics_rollup", RUN_FIGURES)}
)
INSERT INTO analytics_workspacerollup (granularity, bucket, workspace_id, {", ".join(RUN_FIGURES)})
SELECT granularity, bucket, workspace_id, {", ".join(RUN_FIGURES)}
FROM total WHERE whole_workspace
ON CONFLICT (granularity, workspace_id, bucket) DO UPDATE SET
    {_added("analytics_workspacerollup", RUN_FIGURES)}
"""  # noqa: S608 - made of this module's constants; the values are parameters

STEP_FIGURES = (
    "succeeded", "failed", "retries", "crashes", "duration_ms_sum", "duration_ms_max", "duration_histogram",
    "tokens_in", "tokens_out", "cost",
)  # fmt: skip
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
    WHERE event.id = ANY(%(ids)s::bigint[]) AND event.type = 'step.finished'
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
    {_added("analytics_steprollup", STEP_FIGURES)}
"""  # noqa: S608 - made of this module's constants; the values are parameters


def id_array(ids: list[int]) -> str:
    """Ids as the text of a PostgreSQL array (cast with ::bigint[]): one string to send, where the
    driver would adapt a list of thousands of ints element by element."""
    return "{" + ",".join(map(str, ids)) + "}"


def runs_and_steps_add(event_ids: list[int]) -> None:
    """Add the run.finished and step.finished events among `event_ids` to Rollup, WorkspaceRollup and
    StepRollup."""
    if not event_ids:
        return
    parameters = {"ids": id_array(event_ids), "no_workflow": str(NO_WORKFLOW)}
    with connection.cursor() as cursor:
        cursor.execute(RUNS, parameters)
        cursor.execute(STEPS, parameters)
