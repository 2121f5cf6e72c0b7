"""Run events to websocket clients, through the channel layer, without making the sender wait long.

`broadcast(events)` is called by `workflows.events.publish` after a transaction committed, from a
request thread or a Celery worker. The events go, in order and at most BATCH_LIMIT to a message, to
the group `workspace.<id>` of each workspace they belong to; consumers (workflows.consumers) pick
what their client asked for. Events are fire-and-forget: RunEvent is the record, and clients that
missed some recover them with a resume. How they reach the consumers (a Redis PUBLISH from the
calling thread, or a hand-off to the ASGI server's loop in the embedded mode) is core.group_send's.
"""

import logging
from collections import defaultdict

from prometheus_client import Counter

from core import group_send
from core.group_send import GroupBroadcaster

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "run.events"  # handled by the consumers' run_events()
# Events sent in one message at most (a message is held in memory by every process subscribed).
BATCH_LIMIT = 500

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


class Broadcaster(GroupBroadcaster):
    """Run events, to their workspaces' groups (one per process is `broadcast`)."""

    def __init__(self) -> None:
        super().__init__(
            messages=messages, what="run events", logger=logger, dropped=dropped_total, merge_limit=BATCH_LIMIT
        )


_broadcaster = Broadcaster()
broadcast = _broadcaster.send
attach = group_send.attach
