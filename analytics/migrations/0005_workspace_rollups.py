"""WorkspaceRollup: the runs of a whole workspace per bucket, so that a question about workspaces reads
one row per bucket instead of one per workflow. Filled from the Rollup rows there are (their sums,
maxima and merged histograms: the aggregate analytics_histogram_sum), so an upgrade needs no rebuild.
And an index of each workflow's rows, for its charts and its page."""

from django.db import migrations, models

HISTOGRAM_SUM = """
CREATE AGGREGATE analytics_histogram_sum(jsonb) (
    SFUNC = analytics_histogram_merge, STYPE = jsonb, INITCOND = '{}'
);
"""
FILL = """
INSERT INTO analytics_workspacerollup (
    granularity, bucket, workspace_id, succeeded, failed, cancelled, timed_out, duration_ms_sum, duration_ms_max,
    duration_histogram, queue_wait_histogram, tokens_in, tokens_out, cost
)
SELECT granularity, bucket, workspace_id, sum(succeeded), sum(failed), sum(cancelled), sum(timed_out),
       sum(duration_ms_sum), max(duration_ms_max), analytics_histogram_sum(duration_histogram),
       analytics_histogram_sum(queue_wait_histogram), sum(tokens_in), sum(tokens_out), sum(cost)
FROM analytics_rollup
GROUP BY granularity, bucket, workspace_id
"""


class Migration(migrations.Migration):

    dependencies = [("analytics", "0004_histogram_functions")]

    operations = [
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
        migrations.RunSQL(HISTOGRAM_SUM, "DROP AGGREGATE IF EXISTS analytics_histogram_sum(jsonb)"),
        migrations.RunSQL(FILL, migrations.RunSQL.noop),
    ]
