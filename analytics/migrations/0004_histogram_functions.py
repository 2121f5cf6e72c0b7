"""SQL functions the rollup writer adds runs and steps with, set-based (analytics.services.rollup_sql):
a log-scale histogram of an array of milliseconds, and the merge of two histograms. Their buckets are
analytics.histograms' (GROWTH 1.04, values below 0.001 ms in "z")."""

from django.db import migrations

HISTOGRAM = """
CREATE OR REPLACE FUNCTION analytics_histogram(milliseconds double precision[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(bucket, count), '{}'::jsonb)
    FROM (
        SELECT CASE WHEN value < 0.001 THEN 'z' ELSE floor(ln(value) / ln(1.04))::bigint::text END AS bucket,
               count(*) AS count
        FROM unnest(milliseconds) AS value
        WHERE value IS NOT NULL
        GROUP BY 1
    ) AS buckets
$$;
"""
MERGE = """
CREATE OR REPLACE FUNCTION analytics_histogram_merge(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(key, total), '{}'::jsonb)
    FROM (
        SELECT key, sum(value::bigint) AS total
        FROM (SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b)) AS counts
        GROUP BY key
    ) AS merged
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("analytics", "0003_tallies_insights_reports")]

    operations = [
        migrations.RunSQL(HISTOGRAM, "DROP FUNCTION IF EXISTS analytics_histogram(double precision[])"),
        migrations.RunSQL(MERGE, "DROP FUNCTION IF EXISTS analytics_histogram_merge(jsonb, jsonb)"),
    ]
