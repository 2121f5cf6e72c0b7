"""Group names and broadcasts for live run updates over the channel layer.

Group names keep to letters, digits, `-`, `_` and `.` (Channels' rule). Broadcasts come from
`workflows.events.publish`, after commit, in whichever process changed the run.
"""

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

RUN_EVENT = "run.event"


def run_group(run_id) -> str:
    return f"workflow-run.{run_id}"


def crosses_processes() -> bool:
    """An in-memory layer only reaches this process's own event loop, not the embedded workers' threads."""
    return not isinstance(get_channel_layer(), InMemoryChannelLayer)


def broadcast_run_event(event: dict) -> None:
    if crosses_processes():
        async_to_sync(get_channel_layer().group_send)(run_group(event["run"]), {"type": RUN_EVENT, "event": event})
