"""Run events (and workflows' own events) to websocket clients, through the channel layer, without
making the sender wait long.

`broadcast(events)` is called by `workflows.events.publish` after a transaction committed, from a
request thread or a Celery worker. The events go, in order and at most BATCH_LIMIT to a message, to
the group `workspace.<id>` of each workspace they belong to; consumers (workflows.consumers) pick
what their client asked for. Events are fire-and-forget: RunEvent is the record, and clients that
missed some recover them with a resume. How they reach the consumers (a Redis PUBLISH from the
calling thread, or a hand-off to the ASGI server's loop in the embedded mode) is core.group_send's.

`workflow_event` sends, the same way, what happens to a workflow rather than to a run (saved, deleted,
its runs paused): the same envelope with no run, step or seq. Nothing logs them and no resume replays
them; a page that missed some reads the workflow again.
"""

import logging
import uuid
from collections import defaultdict
from typing import Any

from django.db import transaction
from django.utils import timezone
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


def workflow_event(event_type: str, *, workspace_id, workflow_id, actor: Any, **data: Any) -> None:
    """Send `event_type` about a workflow (`workflow_id` None: about all of the workspace's) to the
    websockets of its workspace once the current transaction commits."""
    send_on_commit(
        [workflow_envelope(event_type, workspace_id=workspace_id, workflow_id=workflow_id, actor=actor, **data)]
    )


def send_on_commit(events: list[dict]) -> None:
    """Broadcast workflow envelopes, all at once, when the current transaction commits."""
    transaction.on_commit(lambda: broadcast(events))


def workflow_envelope(event_type: str, *, workspace_id, workflow_id, actor: Any, **data: Any) -> dict:
    """The run events' envelope for a workflow's event: no run, step or seq; `data` gets `by`, the
    actor's email (None for the system)."""
    return {
        "type": event_type,
        "id": str(uuid.uuid4()),
        "seq": None,
        "ts": timezone.now().isoformat(),
        "workspace": str(workspace_id),
        "workflow": str(workflow_id) if workflow_id else None,
        "run": None,
        "step": None,
        "data": {"by": getattr(actor, "email", None), **data},
    }


def workflow_saved(event_type: str, workflow: Any, actor: Any) -> None:
    """`workflow.created`, `.updated` or `.restored`, with what lists and editors show of it."""
    workflow_event(
        event_type,
        workspace_id=workflow.workspace_id,
        workflow_id=workflow.pk,
        actor=actor,
        name=workflow.name,
        status=workflow.status,
        version=workflow.version,
    )
