"""The names a question may use: ranges, buckets, metrics and how they split, and the rollups' sums."""

from datetime import timedelta

from analytics.models import Rollup

Granularity = Rollup.Granularity
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "365d": timedelta(days=365),
}
BUCKETS = (*Granularity.values, "week")
# At most this many points in a timeseries: minute buckets over a year would be half a million.
MAX_POINTS = 2000
# Series beyond this many (by their total) are summed as "other".
MAX_SERIES = 10
# Exact percentiles from the raw events for ranges this short with at most this many runs.
EXACT_PERCENTILE_SPAN = timedelta(days=1)
EXACT_PERCENTILE_MAX_RUNS = 50_000

RUN_SUMS = ("succeeded", "failed", "cancelled", "timed_out", "tokens_in", "tokens_out", "cost", "duration_ms_sum")
STEP_SUMS = ("succeeded", "failed", "retries", "crashes", "tokens_in", "tokens_out", "cost", "duration_ms_sum")
TALLY_SUMS = ("count", "value", "tokens_in", "tokens_out", "cost")

# Metrics of runs (Rollup), of steps (StepRollup), and of tallies: (kind, what of it).
RUN_METRICS = (
    "runs",
    "succeeded",
    "failed",
    "cancelled",
    "timed_out",
    "success_rate",
    "duration_p50",
    "duration_p95",
    "duration_p99",
    "duration_mean",
    "duration_max",
    "queue_wait_p50",
    "queue_wait_p95",
    "tokens_in",
    "tokens_out",
    "cost",
    "throughput",
)
STEP_METRICS = {"steps": "steps", "step_failures": "failed", "retries": "retries", "crash_recoveries": "crashes"}
TALLY_METRICS = {
    "concurrency": ("run.busy", "value"),
    "runs_started": ("run.trigger", "count"),
    "errors": ("error.type", "count"),
    "documents": ("generation", "count"),
    "generation_tokens_in": ("generation", "tokens_in"),
    "generation_tokens_out": ("generation", "tokens_out"),
    "generation_cost": ("generation", "cost"),
    "cache_hits": ("generation.cached", "count"),
    "webhooks_received": ("webhook.received", "count"),
    "webhooks_rejected": ("webhook.rejected", "count"),
    "schedules_fired": ("schedule.fired", "count"),
    "schedules_missed": ("schedule.missed", "count"),
    "approvals": ("approval.decided", "count"),
    "notifications_delivered": ("notification.delivered", "count"),
    "notifications_failed": ("notification.failed", "count"),
    "logins": ("login", "count"),
    "api_key_uses": ("api_key.used", "count"),
    "active_members": ("member.active", "distinct"),
    "budget_thresholds": ("budget.threshold", "count"),
}
METRICS = (*RUN_METRICS, *STEP_METRICS, *TALLY_METRICS)
# The run metrics read from a histogram: (which, the percentile).
PERCENTILE_METRICS = {
    "duration_p50": ("duration_histogram", 50),
    "duration_p95": ("duration_histogram", 95),
    "duration_p99": ("duration_histogram", 99),
    "queue_wait_p50": ("queue_wait_histogram", 50),
    "queue_wait_p95": ("queue_wait_histogram", 95),
}
# What a timeseries may be split by, and the metrics each split has.
GROUPS = {
    "workflow": METRICS,
    "status": ("runs",),
    "trigger": ("runs_started",),
    "model": ("documents", "generation_tokens_in", "generation_tokens_out", "generation_cost"),
    "error": ("errors",),
    "channel": ("notifications_delivered", "notifications_failed"),
}
# The breakdowns: a tally kind's labels, largest first.
BREAKDOWNS = {
    "triggers": "run.trigger",
    "error_types": "error.type",
    "errors": "error.message",
    "models": "generation",
    "hosts": "retries.host",
    "webhook_rejections": "webhook.rejected",
    "channels_failed": "notification.failed",
    "logins": "login",
}

NODE_GROUPS = {"key": "node_key", "type": "node_type"}
