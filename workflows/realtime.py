"""Group names and broadcasts for live run updates over the channel layer.

Group names keep to letters, digits, `-`, `_` and `.` (Channels' rule). Broadcasts come from
`workflows.events.publish`, after commit, in whichever process changed the run.
"""

import asyncio

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

RUN_EVENT = "run.event"


def run_group(run_id) -> str:
    return f"workflow-run.{run_id}"


def crosses_processes() -> bool:
    """An in-memory layer only reaches this process: the workers of the embedded mode share it,
    but their threads are not its event loop, so waiters there poll instead (see wait_for_run_end)."""
    return not isinstance(get_channel_layer(), InMemoryChannelLayer)


def broadcast_run_event(event: dict) -> None:
    if crosses_processes():
        async_to_sync(get_channel_layer().group_send)(run_group(event["run"]), {"type": RUN_EVENT, "event": event})


async def wait_for_signal(channel: str, seconds: float) -> bool:
    """Await one message on `channel` for at most `seconds`; True if one came."""
    try:
        await asyncio.wait_for(get_channel_layer().receive(channel), timeout=seconds)
    except TimeoutError:
        return False
    return True
