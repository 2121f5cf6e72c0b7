"""WorkspaceRollup: the runs of a whole workspace per bucket, so that a question about workspaces reads
one row per bucket instead of one per workflow. Filled from the Rollup rows there are (their sums,
maxima and merged histograms: the aggregate analytics_histogram_sum), so an upgrade needs no rebuild.
The run rollups count their steps' retries and crash recoveries too (filled from the step rollups).
The histogram functions of 0004 become PL/pgSQL (same buckets, same results, faster).
And an index of each workflow's rows, for its charts and its page."""

import importlib

from django.db import migrations, models

histograms_0004 = importlib.import_module("analytics.migrations.0004_histogram_functions")

RETRIES = "Of the runs' steps: attempts beyond the first."
CRASHES = "Of the runs' steps: attempts whose worker was lost."
# Runs recorded before runs carried their steps' retries: those of their workflow's steps of the bucket.
RETRIES_FILL = """
UPDATE analytics_rollup AS r SET retries = s.retries, crashes = s.crashes
FROM (
    SELECT granularity, bucket, workspace_id, workflow_id, sum(retries) AS retries, sum(crashes) AS crashes
    FROM analytics_steprollup GROUP BY granularity, bucket, workspace_id, workflow_id
) AS s
WHERE (r.granularity, r.bucket, r.workspace_id, r.workflow_id) = (s.granularity, s.bucket, s.workspace_id, s.workflow_id)
"""
# The functions of 0004 again, in PL/pgSQL: called once per rollup row a batch changes, a SQL function
# running a query per call cost more than everything else the statement does (2.5 times their time).
HISTOGRAM = """
CREATE OR REPLACE FUNCTION analytics_histogram(milliseconds double precision[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    histogram jsonb := '{}';
    value double precision;
    bucket text;
BEGIN
    FOREACH value IN ARRAY milliseconds LOOP
        CONTINUE WHEN value IS NULL;
        bucket := CASE WHEN value < 0.001 THEN 'z' ELSE floor(ln(value) / ln(1.04))::bigint::text END;
        histogram := histogram || jsonb_build_object(bucket, coalesce((histogram->>bucket)::bigint, 0) + 1);
    END LOOP;
    RETURN histogram;
END
$$;
"""
MERGE = """
CREATE OR REPLACE FUNCTION analytics_histogram_merge(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    histogram jsonb := coalesce(a, '{}');
    bucket text;
    counted text;
BEGIN
    FOR bucket, counted IN SELECT key, value FROM jsonb_each_text(coalesce(b, '{}')) LOOP
        histogram := histogram || jsonb_build_object(
            bucket, coalesce((histogram->>bucket)::bigint, 0) + counted::bigint
        );
    END LOOP;
    RETURN histogram;
END
$$;
"""
HISTOGRAM_SUM = """
CREATE AGGREGATE analytics_histogram_sum(jsonb) (
    SFUNC = analytics_histogram_merge, STYPE = jsonb, INITCOND = '{}'
);
"""
FILL = """
INSERT INTO analytics_workspacerollup (
    granularity, bucket, workspace_id, succeeded, failed, cancelled, timed_out, duration_ms_sum, duration_ms_max,
    duration_histogram, queue_wait_histogram, tokens_in, tokens_out, cost, retries, crashes
)
SELECT granularity, bucket, workspace_id, sum(succeeded), sum(failed), sum(cancelled), sum(timed_out),
       sum(duration_ms_sum), max(duration_ms_max), analytics_histogram_sum(duration_histogram),
       analytics_histogram_sum(queue_wait_histogram), sum(tokens_in), sum(tokens_out), sum(cost),
       sum(retries), sum(crashes)
FROM analytics_rollup
GROUP BY granularity, bucket, workspace_id
"""


class Migration(migrations.Migration):

    dependencies = [("analytics", "0004_histogram_functions")]

    operations = [
        migrations.AddField(
            model_name="rollup", name="retries", field=models.PositiveIntegerField(default=0, help_text=RETRIES)
        ),
        migrations.AddField(
            model_name="rollup", name="crashes", field=models.PositiveIntegerField(default=0, help_text=CRASHES)
        ),
        migrations.RunSQL(RETRIES_FILL, migrations.RunSQL.noop),
        migrations.CreateModel(
            name='WorkspaceRollup',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('granularity', models.CharField(choices=[('minute', 'Minute'), ('hour', 'Hour'), ('day', 'Day')], max_length=6)),
                ('bucket', models.DateTimeField()),
                ('workspace_id', models.UUIDField()),
                ('succeeded', models.PositiveIntegerField(default=0)),
                ('failed', models.PositiveIntegerField(default=0)),
                ('duration_ms_sum', models.FloatField(default=0)),
                ('duration_ms_max', models.FloatField(default=0)),
                ('duration_histogram', models.JSONField(default=dict)),
                ('tokens_in', models.BigIntegerField(default=0)),
                ('tokens_out', models.BigIntegerField(default=0)),
                ('cost', models.FloatField(default=0)),
                ('cancelled', models.PositiveIntegerField(default=0)),
                ('timed_out', models.PositiveIntegerField(default=0, help_text='Also counted in failed.')),
                ('queue_wait_histogram', models.JSONField(default=dict)),
                ("retries", models.PositiveIntegerField(default=0, help_text=RETRIES)),
                ("crashes", models.PositiveIntegerField(default=0, help_text=CRASHES)),
            ],
            options={
                'ordering': ['bucket'],
                'abstract': False,
                'constraints': [models.UniqueConstraint(fields=('granularity', 'workspace_id', 'bucket'), name='analytics_workspace_once')],
            },
        ),
        migrations.AddIndex(
            model_name="rollup",
            index=models.Index(fields=["workflow_id", "granularity", "bucket"], name="analytics_rollup_workflow"),
        ),
        migrations.AddIndex(
            model_name="steprollup",
            index=models.Index(fields=["workflow_id", "granularity", "bucket"], name="analytics_step_workflow"),
        ),
        migrations.RunSQL(HISTOGRAM, histograms_0004.HISTOGRAM),
        migrations.RunSQL(MERGE, histograms_0004.MERGE),
        migrations.RunSQL(HISTOGRAM_SUM, "DROP AGGREGATE IF EXISTS analytics_histogram_sum(jsonb)"),
        migrations.RunSQL(FILL, migrations.RunSQL.noop),
    ]
