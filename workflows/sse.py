"""Server-sent events: a run's events as `text/event-stream`, for clients that cannot use websockets.

The stream reads the run's log (RunEvent) after the client's last seq and then waits for the
channel layer to say the run has more (the same broadcast the websockets get), so it has the log's
order with no gap. `id:` is the seq: a reconnecting client sends it back as Last-Event-ID. The
stream ends once the run has finished and everything is sent.

That is under ASGI (daphne; nginx sends `Accept: text/event-stream` requests there). A WSGI server
(gunicorn, or a request that reached it with `?format=event-stream`) would hold a thread for the
stream's whole life, and Django reads an asynchronous stream to its end before sending any of it:
there the stream is what the log holds now (run_event_snapshot), and the client reconnects after
`retry` with Last-Event-ID, as after any break.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from workflows import realtime, selectors
from workflows.models import Run

KEEPALIVE_SECONDS = 15
RECONNECT_MS = 2000
# Events a snapshot sends at most, as the JSON list does; the client's reconnection gets the next ones.
SNAPSHOT_EVENTS = 1000

_run_events = database_sync_to_async(selectors.run_event_envelopes, thread_sensitive=False)


def _is_finished(run_id) -> bool:
    return Run.objects.filter(pk=run_id, status__in=Run.FINISHED).exists()


_finished = database_sync_to_async(_is_finished, thread_sensitive=False)


def _frame(event: dict) -> str:
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def run_event_snapshot(run: Run, after: int) -> Iterator[str]:
    """The stream as a WSGI server serves it: the events logged after `after`, then the end."""
    yield f"retry: {RECONNECT_MS}\n\n"
    for event in selectors.run_event_envelopes(run.pk, after, limit=SNAPSHOT_EVENTS):
        yield _frame(event)


async def run_event_stream(run: Run, after: int) -> AsyncIterator[str]:
    run_id = str(run.pk)
    realtime.attach(asyncio.get_running_loop())
    layer = get_channel_layer()
    channel = await layer.new_channel("sse.")
    group = realtime.workspace_group(run.workspace_id)
    await layer.group_add(group, channel)
    more = asyncio.Event()

    async def listen() -> None:
        # One receiver for the whole stream: a receive cancelled at each keep-alive would leave
        # the channel unsubscribed (and events missed) until the next one.
        while True:
            message = await layer.receive(channel)
            if any(event["run"] == run_id for event in message.get("events", ())):
                more.set()

    listener = asyncio.ensure_future(listen())
    try:
        yield f"retry: {RECONNECT_MS}\n\n"
        last = after
        while True:
            more.clear()
            events = await _run_events(run_id, last)
            for event in events:
                yield _frame(event)
                last = event["seq"]
            if events:
                continue
            if await _finished(run_id):
                # Events written with the run's last change are logged before it reads finished.
                if not await _run_events(run_id, last, limit=1):
                    return
                continue
            try:
                await asyncio.wait_for(more.wait(), timeout=KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
    finally:
        # Cancelling the pending receive is what makes the pub/sub layer unsubscribe the channel.
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await layer.group_discard(group, channel)
