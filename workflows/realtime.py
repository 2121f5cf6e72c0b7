"""Run events to websocket clients, through the channel layer, without making the sender wait long.

`broadcast(events)` is called by `workflows.events.publish` after a transaction committed, from a
request thread or a Celery worker. The events go, in order and at most BATCH_LIMIT to a message, to
the group `workspace.<id>` of each workspace they belong to; consumers (workflows.consumers) pick
what their client asked for. Events are fire-and-forget: RunEvent is the record, and clients that
missed some recover them with a resume.

How they get there depends on the channel layer:
- Redis pub/sub (the distributed mode): the calling thread PUBLISHes them itself, a round trip of
  about 0.1 ms. Handing them to an asyncio loop in another thread, as this module once did, cost
  three times the CPU (0.37 against 0.12 ms per transaction, the two threads taking turns with the
  GIL), and a step is a transaction or two. If Redis cannot be reached, events are dropped, and no
  publish is tried for BACKOFF_SECONDS, so that an outage costs each transaction nothing rather
  than a timeout.
- In memory (the embedded mode): consumers live in the ASGI server's event loop, so the events are
  handed to that loop (`attach` names it when the first client connects). A process that has no
  such loop has no client to send to.
"""

import asyncio
import logging
import threading
import time
from collections import defaultdict

import redis
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from prometheus_client import Counter

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "run.events"  # handled by the consumers' run_events()
# Events sent in one message at most (a message is held in memory by every process subscribed).
BATCH_LIMIT = 500
# Transactions' worth of events waiting for the server's loop; beyond it they are dropped.
QUEUE_LIMIT = 10_000
# A publish that cannot reach Redis within this long is given up (and events are dropped) ...
PUBLISH_TIMEOUT_SECONDS = 0.5
# ... and none is tried for this long after.
BACKOFF_SECONDS = 5.0

dropped_total = Counter("dwc_realtime_dropped_total", "Run event batches not broadcast (channel layer down or slow).")


def workspace_group(workspace_id) -> str:
    return f"workspace.{workspace_id}"


def messages(events: list[dict]) -> list[tuple[str, dict]]:
    """(group, message) pairs for a list of events, in order, at most BATCH_LIMIT events each."""
    by_workspace: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        by_workspace[event["workspace"]].append(event)
    return [
        (workspace_group(workspace), {"type": MESSAGE_TYPE, "events": batch[start : start + BATCH_LIMIT]})
        for workspace, batch in by_workspace.items()
        for start in range(0, len(batch), BATCH_LIMIT)
    ]


class RedisPublisher:
    """Sends group messages of a RedisPubSubChannelLayer with one PUBLISH each, from any thread."""

    def __init__(self, layer: RedisPubSubChannelLayer) -> None:
        config = settings.CHANNEL_LAYERS[DEFAULT_CHANNEL_LAYER].get("CONFIG", {})
        hosts = config.get("hosts") or ["redis://localhost:6379"]
        if len(hosts) != 1 or not isinstance(hosts[0], str):
            raise ValueError("workflows.realtime publishes to one Redis, given by URL in CHANNEL_LAYERS' hosts.")
        self.layer = layer
        self.prefix = config.get("prefix", "asgi")
        self.client = redis.Redis.from_url(
            hosts[0], socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS, socket_timeout=PUBLISH_TIMEOUT_SECONDS
        )
        self.resume_at = 0.0

    def channel(self, group: str) -> str:
        # The name RedisPubSubLoopLayer._get_group_channel_name gives the group, which its
        # subscribers listen on (tests/workflows/test_realtime_publish.py checks that they agree).
        return f"{self.prefix}__group__{group}"

    def send(self, events: list[dict]) -> None:
        if time.monotonic() < self.resume_at:
            dropped_total.inc()
            return
        try:
            for group, message in messages(events):
                self.client.publish(self.channel(group), self.layer.serialize(message))
        except redis.RedisError:
            self.resume_at = time.monotonic() + BACKOFF_SECONDS
            dropped_total.inc()
            logger.warning("could not broadcast run events; not trying again for %s s", BACKOFF_SECONDS, exc_info=True)


class _LoopHandOff:
    """Sends group messages from the ASGI server's event loop, where an in-memory layer's consumers are."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue: asyncio.Queue | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.lock:
            if self.loop is not loop:
                self.loop, self.queue = loop, asyncio.Queue(maxsize=QUEUE_LIMIT)
                asyncio.run_coroutine_threadsafe(self._drain(self.queue), loop)

    def send(self, events: list[dict]) -> None:
        loop = self.loop
        if loop is None:
            return  # no client of this process has connected: nobody here to send to
        try:
            loop.call_soon_threadsafe(self._enqueue, events)
        except RuntimeError:  # the loop was closed (the server stopped): nobody is listening here
            logger.debug("realtime loop closed; events not broadcast")

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
            # Whatever else is waiting goes in the same messages.
            while not queue.empty() and len(events) < BATCH_LIMIT:
                events += queue.get_nowait()
            for group, message in messages(events):
                try:
                    await layer.group_send(group, message)
                except Exception:  # whatever the layer raises, this loop must go on for later events
                    dropped_total.inc()
                    logger.warning("could not broadcast run events", exc_info=True)


class Broadcaster:
    """Sends run events the way this process's channel layer needs (see the module's docstring)."""

    def __init__(self) -> None:
        self.hand_off = _LoopHandOff()
        self.lock = threading.Lock()
        self._publisher: RedisPublisher | None = None
        self._layer_checked = False

    def publisher(self) -> RedisPublisher | None:
        """The Redis publisher, or None when the layer is not Redis pub/sub."""
        if not self._layer_checked:
            with self.lock:
                if not self._layer_checked:
                    layer = get_channel_layer()
                    if isinstance(layer, RedisPubSubChannelLayer):
                        self._publisher = RedisPublisher(layer)
                    self._layer_checked = True
        return self._publisher

    def send(self, events: list[dict]) -> None:
        publisher = self.publisher()
        if publisher is not None:
            publisher.send(events)
        else:
            self.hand_off.send(events)


_broadcaster = Broadcaster()
broadcast = _broadcaster.send
attach = _broadcaster.hand_off.attach
