"""The product's own Prometheus metric families, next to django-prometheus's.

Counters are updated by `workflows.events.publish()` (one place for every run event). Label values
known in advance are created at zero so dashboards and alerts see the series before the first run.
"""

from prometheus_client import Counter, Gauge, Histogram

RUN_FINAL_STATUSES = ("succeeded", "failed", "cancelled")
EVENT_TYPES = (
    "run.created",
    "run.started",
    "run.waiting",
    "run.succeeded",
    "run.failed",
    "run.cancelled",
    "step.queued",
    "step.started",
    "step.delta",
    "step.retrying",
    "step.succeeded",
    "step.failed",
    "step.skipped",
    "document.created",
)
# The providers that call a model; the template provider has nothing to cache.
GENERATION_PROVIDERS = ("openai", "anthropic")

workflow_runs_total = Counter("dwc_workflow_runs_total", "Workflow runs that finished, by final status.", ["status"])
step_executions_total = Counter(
    "dwc_step_executions_total", "Step executions that finished, by node type and status.", ["type", "status"]
)
run_duration_seconds = Histogram(
    "dwc_run_duration_seconds",
    "Wall time of finished runs, from start to finish.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
websocket_connections_active = Gauge(
    "dwc_websocket_connections_active", "Open websocket connections.", multiprocess_mode="livesum"
)
events_published_total = Counter("dwc_events_published_total", "Run events published, by type.", ["type"])
generation_cache_hits_total = Counter(
    "dwc_generation_cache_hits_total", "Generations served from the result cache, by provider.", ["provider"]
)
generation_tokens_total = Counter(
    "dwc_generation_tokens_total",
    "Language-model tokens of succeeded document steps, by provider, model and direction (in, out).",
    ["provider", "model", "direction"],
)
generation_cost_total = Counter(
    "dwc_generation_cost_total",
    "US dollars spent on document steps (price table), by provider and model.",
    ["provider", "model"],
)

step_duration_seconds = Histogram(
    "dwc_step_duration_seconds",
    "Wall time of finished step attempts, from start to finish, by node type.",
    ["type"],
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
step_queue_wait_seconds = Histogram(
    "dwc_step_queue_wait_seconds",
    "Time from a step being queued to a worker starting it, by Celery queue.",
    ["queue"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
step_retries_total = Counter(
    "dwc_step_retries_total", "Step attempts that failed and will be retried, by node type.", ["type"]
)
recoveries_total = Counter(
    "dwc_recoveries_total",
    "What the recovery task repaired, by kind (RECOVERY_KINDS: lost workers, lost messages, due steps, ...).",
    ["kind"],
)
recovery_last_run_timestamp_seconds = Gauge(
    "dwc_recovery_last_run_timestamp_seconds",
    "When the recovery task last ran (Unix time); beat sends it every DWC_RECOVER_EVERY_SECONDS.",
    multiprocess_mode="max",
)
RECOVERY_KINDS = (
    "lost_workers",
    "lost_messages",
    "timed_out_steps",
    "due",
    "timed_out_runs",
    "runs",
    "budget_reservations",
)

for _status in RUN_FINAL_STATUSES:
    workflow_runs_total.labels(status=_status)
for _type in EVENT_TYPES:
    events_published_total.labels(type=_type)
for _provider in GENERATION_PROVIDERS:
    generation_cache_hits_total.labels(provider=_provider)
for _kind in RECOVERY_KINDS:
    recoveries_total.labels(kind=_kind)
