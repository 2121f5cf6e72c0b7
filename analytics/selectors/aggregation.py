"""Sums and histogram merges of rollup rows, in PostgreSQL (`jsonb_each_text`)."""

from collections.abc import Iterable, Iterator

from django.db import connection
from django.db.models import F, Max, QuerySet, Sum

from analytics.histograms import percentile
from analytics.selectors.catalog import RUN_SUMS


def _aggregate(rows: QuerySet, sums: Iterable[str], histograms: Iterable[str], group: list[str]) -> dict:
    """Per group (a tuple of the `group` values): the sums, the maximum duration and the merged
    histograms of the rows. Histograms are merged in PostgreSQL and come back as one JSON object per
    group and histogram (decoded by the driver, not built here key by key)."""
    totals: dict[tuple, dict] = {}
    annotations = {name: Sum(name) for name in sums}
    if "duration_ms_sum" in annotations:
        annotations["duration_ms_max"] = Max("duration_ms_max")
    if annotations and group:
        for row in rows.values(*group).annotate(**annotations).order_by():
            totals[tuple(row.pop(name) for name in group)] = row
    elif annotations:
        totals[()] = rows.aggregate(**annotations)
    for name in histograms:
        for key, histogram in _histograms_merged(rows, name, group):
            totals.setdefault(key, {})[name] = histogram
    return totals


def _histograms_merged(rows: QuerySet, name: str, group: list[str]) -> Iterator[tuple[tuple, dict]]:
    """Per group: the histogram `name` of the rows merged, in PostgreSQL. A group of one row (a chart of one
    workflow by the rows' own bucket) is its histogram as it is: expanding and merging it would be most
    of such a query's time. Merged ones are built as json (text), not jsonb (a sorted binary object,
    which costs more than the merge); both come back decoded by psycopg."""
    inner, params = rows.values(*group, histogram=F(name)).order_by().query.sql_with_params()
    # The inner query is the ORM's, its values passed as parameters; the columns are our own names.
    columns = ", ".join(f'"{column}"' for column in group)
    if group:
        sql = f"""
            WITH r AS MATERIALIZED ({inner}),
                 sizes AS (SELECT {columns}, count(*) AS size FROM r GROUP BY {columns})
            SELECT {columns}, r.histogram::json FROM r JOIN sizes USING ({columns}) WHERE size = 1
            UNION ALL
            SELECT {columns}, json_object_agg(key, n) FROM (
                SELECT {columns}, h.key, sum(h.value::bigint) AS n
                FROM r JOIN sizes USING ({columns}), jsonb_each_text(r.histogram) h
                WHERE size > 1 GROUP BY {columns}, h.key
            ) c GROUP BY {columns}
        """  # noqa: S608 - see above
    else:
        each = f"({inner}) r, jsonb_each_text(r.histogram) h"
        counts = f"SELECT h.key, sum(h.value::bigint) AS n FROM {each} GROUP BY h.key"  # noqa: S608 - see above
        sql = f"SELECT json_object_agg(key, n) FROM ({counts}) c"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for *key, histogram in cursor.fetchall():
            yield tuple(key), histogram or {}


def _run_figures(total: dict, minutes: float | None = None) -> dict:
    """The run metrics of one aggregate of Rollup rows."""
    counts = {name: int(total.get(name) or 0) for name in RUN_SUMS if name not in ("cost", "duration_ms_sum")}
    runs = counts["succeeded"] + counts["failed"] + counts["cancelled"]
    finished = counts["succeeded"] + counts["failed"]
    duration, wait = total.get("duration_histogram") or {}, total.get("queue_wait_histogram") or {}
    return {
        "runs": runs,
        **counts,
        "success_rate": counts["succeeded"] / finished if finished else None,
        "duration_mean": (total.get("duration_ms_sum") or 0) / runs if runs else None,
        "duration_p50": percentile(duration, 50),
        "duration_p95": percentile(duration, 95),
        "duration_p99": percentile(duration, 99),
        "duration_max": total.get("duration_ms_max") if runs else None,
        "queue_wait_p50": percentile(wait, 50),
        "queue_wait_p95": percentile(wait, 95),
        "cost": round(float(total.get("cost") or 0), 6),
        "throughput": runs / minutes if minutes else None,
    }
