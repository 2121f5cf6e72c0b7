"""The workflow engine: Celery and its queues, the engine's clock (heartbeats, leases, recovery),
everything beat starts, and the limits on triggers."""

import os

from kombu import Exchange, Queue

from config.settings.environment import REDIS_URL

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "memory://localhost/")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = (
    # The in-memory transport polls; a short interval keeps the embedded mode snappy.
    {"polling_interval": 0.05} if CELERY_BROKER_URL.startswith("memory") else {}
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection around every task unless this is set, so
# each engine step paid a new PostgreSQL connection. Workers close stale or broken connections
# the way Django does between requests instead (config/celery.py), honouring CONN_MAX_AGE.
CELERY_DB_REUSE_MAX = 1_000_000
# Control work (advancing runs, cheap steps, wake-ups, time-outs, recovery, schedules) travels on
# `engine`. Steps that wait on the outside world travel on queues of their own: `calls` (HTTP
# requests, webhooks), `generation` (language models), `notifications` (email, chat). Workers that
# consume only `engine` then start the next step within moments of a call ending, however many slow
# calls are under way (docs/operations.md: `make engine-worker` beside `make worker`).
DWC_CONTROL_QUEUE = "engine"
DWC_STEP_QUEUES = ("calls", "generation", "notifications")
CELERY_TASK_DEFAULT_QUEUE = DWC_CONTROL_QUEUE
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name) for name in (DWC_CONTROL_QUEUE, *DWC_STEP_QUEUES)]
# Notification tasks travel on their queue whoever sends them (the API, beat, the admin).
CELERY_TASK_ROUTES = {"notifications.tasks.*": {"queue": "notifications"}}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
# django-celery-beat's, riding out a database outage (config/beat.py).
CELERY_BEAT_SCHEDULER = "config.beat:ResilientDatabaseScheduler"
# The engine's clock (workflows.engine.liveness, .recovery): a running step touches its heartbeat every
# DWC_HEARTBEAT_SECONDS; one silent for DWC_STEP_LEASE_SECONDS lost its worker; a queued step or a
# pending run untouched for DWC_LOST_MESSAGE_SECONDS lost its message. The recovery task that acts
# on them runs every DWC_RECOVER_EVERY_SECONDS.
DWC_HEARTBEAT_SECONDS = float(os.environ.get("DWC_HEARTBEAT_SECONDS", "5"))
DWC_STEP_LEASE_SECONDS = float(os.environ.get("DWC_STEP_LEASE_SECONDS", "30"))
DWC_LOST_MESSAGE_SECONDS = float(os.environ.get("DWC_LOST_MESSAGE_SECONDS", "30"))
DWC_RECOVER_EVERY_SECONDS = float(os.environ.get("DWC_RECOVER_EVERY_SECONDS", "15"))
# A step safe to run again is re-queued after its worker is lost, whatever its retry policy, up to
# this many times: a step that keeps killing its worker (a poison step) then fails.
DWC_STEP_CRASH_LIMIT = int(os.environ.get("DWC_STEP_CRASH_LIMIT", "3"))
# A failed step that is retried waits its backoff, or the Retry-After its HTTP server or language-model
# provider sent with a 429 or 503 when that is longer, but at most this long (a longer one is cut to it).
DWC_RETRY_AFTER_MAX_SECONDS = float(os.environ.get("DWC_RETRY_AFTER_MAX_SECONDS", "300"))
# A worker that loses the database while recording a step's result keeps its lease and tries again
# for this long before giving the step up to recovery (the call is not made again meanwhile).
DWC_RECORD_RETRY_SECONDS = float(os.environ.get("DWC_RECORD_RETRY_SECONDS", "120"))
# Every periodic task of every app, in one place: beat reads one setting.
CELERY_BEAT_SCHEDULE = {
    "recover-runs": {
        "task": "workflows.tasks.recover_runs",
        "schedule": DWC_RECOVER_EVERY_SECONDS,
        "options": {"queue": DWC_CONTROL_QUEUE, "expires": DWC_RECOVER_EVERY_SECONDS},
    },
    # Signed inbound webhook deliveries are remembered while they could be replayed (minutes).
    "webhook-deliveries-prune": {
        "task": "workflows.tasks.webhook_deliveries_prune",
        "schedule": 60 * 60,
        "options": {"queue": DWC_CONTROL_QUEUE, "expires": 30 * 60},
    },
    # Login lockouts (DWC_LOGIN_*, config/settings/accounts.py) and the sessions logout revoked
    # (accounts.tokens): their rows are deleted once they no longer count.
    "lockouts-prune": {
        "task": "accounts.tasks.lockouts_prune",
        "schedule": 60 * 60,
        "options": {"queue": DWC_CONTROL_QUEUE, "expires": 30 * 60},
    },
    "login-sessions-prune": {
        "task": "accounts.tasks.login_sessions_prune",
        "schedule": 60 * 60,
        "options": {"queue": DWC_CONTROL_QUEUE, "expires": 30 * 60},
    },
    # Notification deliveries: scheduled ones due, retries due, and those whose worker died mid-send.
    "notifications-dispatch": {
        "task": "notifications.tasks.deliveries_dispatch",
        "schedule": float(os.environ.get("DWC_NOTIFICATIONS_DISPATCH_EVERY_SECONDS", "15")),
        "options": {"queue": "notifications", "expires": 15},
    },
    # Credentials expiring within DWC_CREDENTIAL_EXPIRY_WARNING_DAYS, or expired: credential.expiring.
    "credentials-expiry": {
        "task": "workflows.tasks.credentials_expiry_submit",
        "schedule": 60 * 60,
        "options": {"queue": DWC_CONTROL_QUEUE, "expires": 30 * 60},
    },
    # Analytics rollups and events past their retention (DWC_ANALYTICS_*_DAYS).
    "analytics-catch-up": {
        "task": "analytics.tasks.rollups_catch_up",
        "schedule": 30,
        "options": {"queue": DWC_CONTROL_QUEUE, "expires": 30},
    },
    "analytics-prune": {
        "task": "analytics.tasks.analytics_prune",
        "schedule": 60 * 60,
        "options": {"queue": DWC_CONTROL_QUEUE, "expires": 30 * 60},
    },
    # Insights found again from the rollups (analytics.services.insights); a late one is skipped, the
    # next comes soon enough.
    "analytics-insights": {
        "task": "analytics.tasks.insights_refresh",
        "schedule": 5 * 60,
        "options": {"queue": DWC_CONTROL_QUEUE, "expires": 4 * 60},
    },
    # Audit events older than AUDIT_RETENTION_DAYS (config/settings/security.py), purged daily.
    "audit-purge": {
        "task": "audit.tasks.audit_purge_expired",
        "schedule": 24 * 60 * 60,
        "options": {"queue": DWC_CONTROL_QUEUE, "expires": 60 * 60},
    },
    # The chain's head, logged hourly: kept outside the database, it shows a rewrite of the whole trail.
    "audit-anchor": {
        "task": "audit.tasks.audit_log_anchor",
        "schedule": 60 * 60,
        "options": {"queue": DWC_CONTROL_QUEUE, "expires": 30 * 60},
    },
}
DWC_EMBEDDED_WORKER_CONCURRENCY = int(os.environ.get("DWC_EMBEDDED_WORKER_CONCURRENCY", "4"))

# --- Triggers ------------------------------------------------------------------------------
# A chain of event-triggered runs deeper than this is not started (A → B → A loops).
DWC_EVENT_TRIGGER_MAX_DEPTH = int(os.environ.get("DWC_EVENT_TRIGGER_MAX_DEPTH", "10"))
# Inbound webhooks: largest body accepted, and requests per token per minute.
DWC_WEBHOOK_MAX_BODY_BYTES = int(os.environ.get("DWC_WEBHOOK_MAX_BODY_BYTES", str(1024 * 1024)))
DWC_WEBHOOK_RATE_PER_MINUTE = int(os.environ.get("DWC_WEBHOOK_RATE_PER_MINUTE", "600"))
# A delivery with `?wait=` is woken when its run ends (workflows.run_ends); in case that
# announcement is missed (Redis restarted), it also reads the run again this often.
DWC_WEBHOOK_WAIT_RECHECK_SECONDS = float(os.environ.get("DWC_WEBHOOK_WAIT_RECHECK_SECONDS", "1"))
# Schedules: at most this many runs for missed slots (catchup: all) or one backfill.
DWC_SCHEDULE_MAX_CATCHUP = int(os.environ.get("DWC_SCHEDULE_MAX_CATCHUP", "100"))
