"""core.group_send with the in-memory channel layer (the embedded mode): group messages handed from a
plain thread to the server's event loop, for a broadcaster made before or after the loop was named."""

import asyncio
import logging
import threading

import pytest
from channels.layers import get_channel_layer
from prometheus_client import Counter

from core import group_send
from core.group_send import GroupBroadcaster

GROUP = "user.group-send-test"


@pytest.fixture
def server_loop(settings):
    """An event loop running in a thread, as daphne's, with an in-memory layer and one channel in GROUP."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    layer = get_channel_layer()
    channel = asyncio.run_coroutine_threadsafe(layer.new_channel(), loop).result(5)
    asyncio.run_coroutine_threadsafe(layer.group_add(GROUP, channel), loop).result(5)
    yield loop, layer, channel
    for task in asyncio.all_tasks(loop):
        loop.call_soon_threadsafe(task.cancel)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def broadcaster() -> GroupBroadcaster:
    return GroupBroadcaster(
        messages=lambda items: items,
        what="test messages",
        logger=logging.getLogger(__name__),
        dropped=Counter("test_group_send_dropped", "unregistered", registry=None),
    )


def received(loop, layer, channel, count: int) -> list[dict]:
    return [asyncio.run_coroutine_threadsafe(layer.receive(channel), loop).result(5) for _ in range(count)]


def test_messages_sent_from_a_thread_reach_the_loops_consumers_in_order(server_loop):
    loop, layer, channel = server_loop
    sender = broadcaster()
    group_send.attach(loop)
    sender.send([(GROUP, {"type": "test.message", "n": 1}), (GROUP, {"type": "test.message", "n": 2})])
    sender.send([(GROUP, {"type": "test.message", "n": 3})])
    assert [message["n"] for message in received(loop, layer, channel, 3)] == [1, 2, 3]


def test_a_broadcaster_first_made_after_a_client_connected_sends_through_that_loop(server_loop):
    loop, layer, channel = server_loop
    group_send.attach(loop)  # a consumer connected: the loop is named before this module's broadcaster exists
    broadcaster().send([(GROUP, {"type": "test.message", "n": 1})])
    assert received(loop, layer, channel, 1)[0]["n"] == 1
