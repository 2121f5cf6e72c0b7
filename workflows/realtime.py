"""Run events to websocket clients, through the channel layer, without making the sender wait.

`broadcast(events)` is called by `workflows.events.publish` after a transaction committed, from a
request thread or a Celery worker. It hands the events to a small asyncio loop of this process,
which sends them, in order, one message per workspace for what is waiting (a transaction's events,
or under load several transactions' together), to the group
`workspace.<id>`; consumers (workflows.consumers) pick what their client asked for. The loop is
the ASGI server's own when this process serves websockets (the embedded mode: workers are threads
of the server), else a daemon thread's. A full queue (the channel layer is down or slow) drops
events: clients recover them from RunEvent with a resume.
"""

import asyncio
import logging
import threading
from collections import defaultdict

from channels.layers import get_channel_layer
from prometheus_client import Counter

logger = logging.getLogger(__name__)

# Transactions' worth of events waiting to be sent; beyond it they are dropped (and resumable).
QUEUE_LIMIT = 10_000
MESSAGE_TYPE = "run.events"  # handled by the consumers' run_events()
# Events sent in one message at most (a message is held in memory by every process subscribed).
BATCH_LIMIT = 500

dropped_total = Counter("dwc_realtime_dropped_total", "Run event batches not broadcast because the queue was full.")


def workspace_group(workspace_id) -> str:
    return f"workspace.{workspace_id}"


class _Broadcaster:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue: asyncio.Queue | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send from `loop` (the running ASGI server's), where this process's consumers live."""
        with self.lock:
            if self.loop is not loop:
                self._start(loop)

    def send(self, events: list[dict]) -> None:
        loop = self.loop
        if loop is None:
            with self.lock:
                if self.loop is None:
                    thread_loop = asyncio.new_event_loop()
                    threading.Thread(target=thread_loop.run_forever, name="realtime", daemon=True).start()
                    self._start(thread_loop)
                loop = self.loop
        try:
            loop.call_soon_threadsafe(self._enqueue, events)
        except RuntimeError:  # the loop was closed (the server stopped): nobody is listening here
            logger.debug("realtime loop closed; events not broadcast")

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self.loop, self.queue = loop, queue
        asyncio.run_coroutine_threadsafe(self._drain(queue), loop)

    def _enqueue(self, events: list[dict]) -> None:
        try:
            self.queue.put_nowait(events)
        except asyncio.QueueFull:
            dropped_total.inc()

    @staticmethod
    async def _drain(queue: asyncio.Queue) -> None:
        layer = get_channel_layer()
        while True:
            events = list(await queue.get())
            # Whatever else is waiting goes in the same messages: under load, one PUBLISH carries
            # many transactions' events instead of one each.
            while not queue.empty() and len(events) < BATCH_LIMIT:
                events += queue.get_nowait()
            by_workspace: dict[str, list[dict]] = defaultdict(list)
            for event in events:
                by_workspace[event["workspace"]].append(event)
            for workspace, batch in by_workspace.items():
                try:
                    await layer.group_send(workspace_group(workspace), {"type": MESSAGE_TYPE, "events": batch})
                except Exception:  # the layer is down: clients resume from RunEvent later
                    dropped_total.inc()
                    logger.warning("could not broadcast run events", exc_info=True)


_broadcaster = _Broadcaster()
broadcast = _broadcaster.send
attach = _broadcaster.attach
