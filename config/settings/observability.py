"""What the server tells its operators: logs (one JSON object per line on stdout) and who may read
the Prometheus metrics."""

import os

from config.settings.environment import env_networks

# --- Metrics (/metrics, core.ops) -----------------------------------------------------
# Served to a request with `Authorization: Bearer <DWC_METRICS_TOKEN>` (if set), or from an address
# in DWC_METRICS_ALLOWED_IPS (default: this machine only), the client address as the throttles see it.
DWC_METRICS_TOKEN = os.environ.get("DWC_METRICS_TOKEN", "")
DWC_METRICS_ALLOWED_IPS = env_networks("DWC_METRICS_ALLOWED_IPS", "127.0.0.0/8,::1")

# --- Logging: one JSON object per line on stdout ------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "core.request_context.RequestContextFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["request_context"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Our access log replaces these; they would print the same request twice.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        # It logs every outbound request's URL (path and query may carry secrets) at INFO.
        "httpx2": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

# --- Analytics (analytics app) ---------------------------------------------------------------------
# Rollups are kept per minute for this many days, per hour for this many, per day for ever (a query
# reads the finest kept for its whole range); raw analytics events for DWC_ANALYTICS_EVENT_RETENTION_DAYS.
DWC_ANALYTICS_MINUTE_ROLLUP_DAYS = float(os.environ.get("DWC_ANALYTICS_MINUTE_ROLLUP_DAYS", "1"))
DWC_ANALYTICS_HOUR_ROLLUP_DAYS = float(os.environ.get("DWC_ANALYTICS_HOUR_ROLLUP_DAYS", "90"))
DWC_ANALYTICS_EVENT_RETENTION_DAYS = float(os.environ.get("DWC_ANALYTICS_EVENT_RETENTION_DAYS", "90"))

# The Celery workers' and beat's own metrics endpoint (config/metrics_server.py): on this port when set
# (0.0.0.0 unless DWC_METRICS_ADDRESS says otherwise; no token: keep it on the internal network).
DWC_METRICS_PORT = os.environ.get("DWC_METRICS_PORT", "")
# What those endpoints read at each scrape, besides the processes' counters (dotted paths of collectors).
DWC_METRICS_SCRAPE_COLLECTORS = ("workflows.metrics.ScrapeTimeCollector",)
