"""Prometheus metrics of the processes that answer no HTTP of their own: Celery workers and beat.

With DWC_METRICS_PORT set, such a process serves `/metrics` on that port (DWC_METRICS_ADDRESS,
0.0.0.0 by default: scrapers reach containers over their network; keep the port off public
interfaces). What it shows: the engine's counters and histograms (`core.metrics`) as its pool
processes counted them, plus what the collectors of DWC_METRICS_SCRAPE_COLLECTORS read at scrape
time (queue depths, the drain: `workflows.metrics`).

A worker's pool processes each count in their own memory, which the endpoint could not see. So, before
anything imports prometheus_client, `prepare()` points PROMETHEUS_MULTIPROC_DIR at a directory made
fresh for this start: every process of the worker then counts in files there, and the endpoint sums
them (prometheus_client's multiprocess mode). gunicorn does the same for the web's workers
(config/gunicorn.py).
"""

import os
import tempfile

ENABLED_BY = "DWC_METRICS_PORT"


def prepare() -> None:
    """Called first thing when `config` is imported: after this, prometheus_client is too late."""
    if os.environ.get(ENABLED_BY) and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="dwc-metrics-")


def serve() -> None:
    """Serve /metrics on DWC_METRICS_PORT, if it is set (a worker's or beat's start)."""
    port = os.environ.get(ENABLED_BY)
    if not port:
        return
    from django.conf import settings
    from django.utils.module_loading import import_string
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    for path in settings.DWC_METRICS_SCRAPE_COLLECTORS:
        registry.register(import_string(path)())
    start_http_server(int(port), addr=os.environ.get("DWC_METRICS_ADDRESS", "0.0.0.0"), registry=registry)


def process_exited(pid: int) -> None:
    """A pool process ended: its live gauges stop counting (their files stay for the counters)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
