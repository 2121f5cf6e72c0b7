"""What a metrics scrape reads at that moment: the Celery queues' depths and whether the engine
drains. Served by the workers' and beat's metrics endpoints (config/metrics_server.py)."""

import logging
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError, connection
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from config.celery import app as celery_app
from workflows.engine import store

logger = logging.getLogger(__name__)
QUEUES = (settings.DWC_CONTROL_QUEUE, *settings.DWC_STEP_QUEUES)
# Kombu's Redis transport keeps a queue as one list per priority step: `name`, then `name\x06\x16<step>`.
PRIORITY_SEP = "\x06\x16"


def queue_depths() -> dict[str, int]:
    """Messages waiting in each queue, on a Redis broker (a queue is a list, one per priority step)."""
    depths = {}
    with celery_app.connection_for_read() as broker:
        client = broker.default_channel.client
        for queue in QUEUES:
            depths[queue] = sum(
                client.llen(key) for key in [queue, *(f"{queue}{PRIORITY_SEP}{step}" for step in (3, 6, 9))]
            )
    return depths


class ScrapeTimeCollector(Collector):
    # The gauge families it yields (for checks that name what the product exports).
    FAMILIES = ("dwc_queue_depth", "dwc_engine_draining")

    def describe(self) -> list:
        return []  # registered without a first collect(), which would reach the broker and the database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("dwc_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"])
        try:
            for queue, waiting in queue_depths().items():
                depth.add_metric([queue], waiting)
        except Exception:  # a broker that does not answer leaves the family empty; `up` still says the worker does
            logger.warning("queue depths not read", exc_info=True)
        yield depth
        draining = GaugeMetricFamily("dwc_engine_draining", "1 while the engine drains (no step starts), else 0.")
        try:
            draining.add_metric([], 1 if store.engine_draining() else 0)
        except DatabaseError:
            logger.warning("the drain not read", exc_info=True)
        finally:
            connection.close()  # each scrape runs in a thread of its own: its connection goes with it
        yield draining
