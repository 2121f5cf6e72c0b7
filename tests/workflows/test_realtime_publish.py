"""How run events leave a process: one PUBLISH per group message on the Redis layer, straight from
the calling thread, received by a real subscriber; and what happens when Redis is away."""

import logging
import threading

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from core import group_send
from tests.processes import free_port
from workflows import realtime

WORKSPACE = "7d9c54f4-3b1a-4a8e-9a43-0a2f3e5c6b71"


def envelopes(count: int, workspace: str = WORKSPACE) -> list[dict]:
    return [{"type": "step.delta", "workspace": workspace, "run": "r", "seq": seq} for seq in range(1, count + 1)]


def test_the_group_channel_is_the_one_the_layers_subscribers_listen_on():
    layer = get_channel_layer()

    async def layers_own_name(group: str) -> str:
        # channels_redis's private naming, pinned here: if an upgrade changes it, this fails
        # instead of every live view going quiet.
        return layer._get_layer()._get_group_channel_name(group)

    group = realtime.workspace_group(WORKSPACE)
    assert realtime.Broadcaster().publisher().channel(group) == async_to_sync(layers_own_name)(group)


def test_a_transactions_events_arrive_in_order_in_messages_of_at_most_the_batch_limit():
    layer = get_channel_layer()
    subscriber = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    broadcaster = realtime.Broadcaster()
    other = "0e4f7c2a-9b8d-4c1e-8f3a-5d6b7a8c9e0f"
    subscriber.subscribe(*(broadcaster.publisher().channel(realtime.workspace_group(w)) for w in (WORKSPACE, other)))
    assert subscriber.get_message(timeout=2)["type"] == "subscribe"
    assert subscriber.get_message(timeout=2)["type"] == "subscribe"

    sent = envelopes(realtime.BATCH_LIMIT * 2 + 3) + envelopes(2, other)
    broadcaster.send(sent)

    received = []
    while (message := subscriber.get_message(timeout=2)) is not None:
        received.append((message["channel"].decode(), layer.deserialize(message["data"])))
    subscriber.close()
    assert [len(message["events"]) for _, message in received] == [realtime.BATCH_LIMIT, realtime.BATCH_LIMIT, 3, 2]
    assert {message["type"] for _, message in received} == {realtime.MESSAGE_TYPE}
    assert [event for _, message in received[:3] for event in message["events"]] == sent[:-2]
    assert received[3][0].endswith(realtime.workspace_group(other))


def test_an_unreachable_redis_drops_events_and_is_not_tried_again_at_once(settings, caplog):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"], "prefix": "dwc-asgi"},
        }
    }
    broadcaster = realtime.Broadcaster()
    dropped = realtime.dropped_total._value.get()
    with caplog.at_level(logging.WARNING, logger="workflows.realtime"):
        for _ in range(5):
            broadcaster.send(envelopes(1))
    assert realtime.dropped_total._value.get() == dropped + 5
    # One warning for the outage, not one per transaction (and no connection attempt meanwhile).
    assert [record.message for record in caplog.records].count(
        f"could not broadcast run events; not trying again for {group_send.BACKOFF_SECONDS} s"
    ) == 1


def test_an_in_memory_layer_without_a_server_loop_sends_nothing_and_starts_no_thread(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    threads = threading.active_count()
    realtime.Broadcaster().send(envelopes(3))
    assert threading.active_count() == threads
    assert get_channel_layer().groups == {}
