"""Channel-layer group messages sent from synchronous code (a request thread, a Celery worker) after a
transaction committed, without making the sender wait long. Realtime modules of the apps
(workflows.realtime for run events, notifications.realtime for inboxes) each make one GroupBroadcaster
and say how their items become (group, message) pairs; the way those reach the consumers is here.

It depends on the channel layer:
- Redis pub/sub (the distributed mode): the calling thread PUBLISHes them itself, all the messages of
  one call pipelined in one round trip (about 0.1 ms; a thousand users' inboxes are one round trip,
  not a thousand). Handing them to an asyncio loop in another thread, as workflows.realtime once did,
  cost three times the CPU (0.37 against 0.12 ms per transaction, the two threads taking turns with
  the GIL). If Redis cannot be reached, the messages are dropped, and no publish is tried for
  BACKOFF_SECONDS, so that an outage costs each transaction nothing rather than a timeout.
- In memory (the embedded mode): consumers live in the ASGI server's event loop, so the items are
  handed to that loop (`attach` names it when the first client connects, for every broadcaster of
  the process). A process that has no such loop has no client to send to.

Messages are fire-and-forget: the database is the record, and clients recover what they missed from it.
"""

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import redis
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from prometheus_client import Counter

Messages = list[tuple[str, dict]]

# Calls' worth of items waiting for the server's loop; beyond it they are dropped.
QUEUE_LIMIT = 10_000
# A publish that cannot reach Redis within this long is given up (and the messages dropped) ...
PUBLISH_TIMEOUT_SECONDS = 0.5
# ... and none is tried for this long after.
BACKOFF_SECONDS = 5.0
OUTAGE = "could not broadcast %s; not trying again for %s s"


class RedisPublisher:
    """Sends group messages of a RedisPubSubChannelLayer from any thread, pipelined: one round trip a call."""

    def __init__(self, layer: RedisPubSubChannelLayer, broadcaster: "GroupBroadcaster") -> None:
        config = settings.CHANNEL_LAYERS[DEFAULT_CHANNEL_LAYER].get("CONFIG", {})
        hosts = config.get("hosts") or ["redis://localhost:6379"]
        if len(hosts) != 1 or not isinstance(hosts[0], str):
            raise ValueError("Realtime broadcasts publish to one Redis, given by URL in CHANNEL_LAYERS' hosts.")
        self.layer = layer
        self.broadcaster = broadcaster
        self.prefix = config.get("prefix", "asgi")
        self.client = redis.Redis.from_url(
            hosts[0], socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS, socket_timeout=PUBLISH_TIMEOUT_SECONDS
        )
        self.resume_at = 0.0

    def channel(self, group: str) -> str:
        # The name RedisPubSubLoopLayer._get_group_channel_name gives the group, which its
        # subscribers listen on (tests/workflows/test_realtime_publish.py checks that they agree).
        return f"{self.prefix}__group__{group}"

    def send(self, messages: Messages) -> None:
        broadcaster = self.broadcaster
        if time.monotonic() < self.resume_at:
            broadcaster.dropped.inc()
            return
        try:
            if len(messages) == 1:
                [(group, message)] = messages
                self.client.publish(self.channel(group), self.layer.serialize(message))
            else:
                pipeline = self.client.pipeline(transaction=False)
                for group, message in messages:
                    pipeline.publish(self.channel(group), self.layer.serialize(message))
                pipeline.execute()
        except redis.RedisError:
            self.resume_at = time.monotonic() + BACKOFF_SECONDS
            broadcaster.dropped.inc()
            broadcaster.logger.warning(OUTAGE, broadcaster.what, BACKOFF_SECONDS, exc_info=True)


class LoopHandOff:
    """Sends group messages from the ASGI server's event loop, where an in-memory layer's consumers are."""

    def __init__(self, broadcaster: "GroupBroadcaster") -> None:
        self.broadcaster = broadcaster
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue: asyncio.Queue | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.lock:
            if self.loop is not loop:
                self.loop, self.queue = loop, asyncio.Queue(maxsize=QUEUE_LIMIT)
                asyncio.run_coroutine_threadsafe(self._drain(self.queue), loop)

    def send(self, items: list) -> None:
        loop = self.loop
        if loop is None:
            return  # no client of this process has connected: nobody here to send to
        try:
            loop.call_soon_threadsafe(self._enqueue, items)
        except RuntimeError:  # the loop was closed (the server stopped): nobody is listening here
            self.broadcaster.logger.debug("realtime loop closed; %s not broadcast", self.broadcaster.what)

    def _enqueue(self, items: list) -> None:
        try:
            self.queue.put_nowait(items)
        except asyncio.QueueFull:
            self.broadcaster.dropped.inc()

    async def _drain(self, queue: asyncio.Queue) -> None:
        layer = get_channel_layer()
        broadcaster = self.broadcaster
        while True:
            items = list(await queue.get())
            # Whatever else is waiting goes in the same messages.
            while not queue.empty() and len(items) < broadcaster.merge_limit:
                items += queue.get_nowait()
            for group, message in broadcaster.messages(items):
                try:
                    await layer.group_send(group, message)
                except Exception:  # whatever the layer raises, this loop must go on for later items
                    broadcaster.dropped.inc()
                    broadcaster.logger.warning("could not broadcast %s", broadcaster.what, exc_info=True)


# Every hand-off of the process, for `attach` (weakly: a broadcaster made by a test goes away with it),
# and the loop last attached, for a broadcaster whose module is first imported after a client connected.
_hand_offs: "weakref.WeakSet[LoopHandOff]" = weakref.WeakSet()
_hand_offs_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


class GroupBroadcaster:
    """Turns items (events, notifications) into (group, message) pairs with `messages` and sends them
    the way this process's channel layer needs (see the module's docstring).

    `messages` must accept the items of several calls at once (the in-memory hand-off merges what
    waits, up to `merge_limit` items); `dropped` counts calls whose messages were not sent.
    """

    def __init__(
        self,
        *,
        messages: Callable[[list], Messages],
        what: str,
        logger: logging.Logger,
        dropped: Counter,
        merge_limit: int = 500,
    ) -> None:
        self.messages, self.what, self.logger, self.dropped = messages, what, logger, dropped
        self.merge_limit = merge_limit
        self.hand_off = LoopHandOff(self)
        with _hand_offs_lock:
            _hand_offs.add(self.hand_off)
            loop = _loop
        if loop is not None and not loop.is_closed():
            self.hand_off.attach(loop)
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
                        self._publisher = RedisPublisher(layer, self)
                    self._layer_checked = True
        return self._publisher

    def send(self, items: list[Any]) -> None:
        if not items:
            return
        publisher = self.publisher()
        if publisher is not None:
            publisher.send(self.messages(items))
        else:
            self.hand_off.send(items)


def attach(loop: asyncio.AbstractEventLoop) -> None:
    """Name the ASGI server's event loop to every broadcaster of the process (a consumer calls this
    when it connects): with an in-memory channel layer, their messages are sent from there."""
    global _loop
    with _hand_offs_lock:
        _loop = loop
        hand_offs = list(_hand_offs)
    for hand_off in hand_offs:
        hand_off.attach(loop)
