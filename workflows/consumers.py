"""Websockets that stream run events: one run, one workflow's runs, a workspace's runs, a user's notices.

Every consumer joins the `workspace.<id>` groups it may see (workflows.realtime sends each
transaction's events there) and forwards the events its client asked for. Per run it delivers them
in `seq` order, with no gap and no duplicate: events published by different processes can arrive
out of order, so a gap is filled from RunEvent (the record) and what was already sent is dropped.
That same bookkeeping makes a resume seamless: `{"action": "resume", "run": id, "after_seq": N}`
replays the log after N, and the live events that arrive meanwhile are held back by the channel
until it is done, then dropped or sent by their seq. A client sends it before it needs the run's
live events: what this connection delivered of the run before the resume may come again (clients
drop what they have by seq). `/ws/runs/<id>/?after_seq=N` resumes as part of connecting.

A workflow's own events (workflows.realtime.workflow_event: saved, deleted, its runs paused) come the
same way with no seq: nothing to order or resume, they are forwarded as they arrive.
"""

import asyncio
import uuid
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied

from accounts.access import workspace_for_member, workspaces_for_user
from accounts.websocket_auth import LoginSessionBound
from core.consumers import AuthenticatedConsumer
from workflows import realtime, selectors
from workflows.models import Run, Workflow

CLOSE_FORBIDDEN = 4403
REPLAY_PAGE = 500  # the default limit of selectors.run_event_envelopes
# Runs whose last seq a connection remembers (the oldest are forgotten first).
TRACKED_RUNS = 5_000
# An event older than the connection by more than this was history when the client connected:
# it comes only with a resume. (The margin covers clocks of other hosts that wrote the events.)
CONNECT_MARGIN = timedelta(seconds=2)


def _uuid(value) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


# Reads of the log need no particular thread: thread_sensitive=False keeps them off the one thread
# that every thread-sensitive call of this process (HTTP views in the embedded mode) queues on.
_run_events = database_sync_to_async(selectors.run_event_envelopes, thread_sensitive=False)


class RunEventsConsumer(LoginSessionBound, AuthenticatedConsumer):
    """The shared part: authenticate, authorize, join groups, deliver events in order, ping and resume."""

    scope_name = ""

    async def connect(self) -> None:
        realtime.attach(asyncio.get_running_loop())
        user = await self.accept_user()
        if user is None:
            return
        try:
            subscription = await database_sync_to_async(self.authorize)(user)
        except PermissionDenied:  # a workspace that requires MFA the user lacks (accounts.access)
            subscription = None
        if subscription is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.workspaces, self.subscribed = subscription
        self.connected_at = datetime.now(UTC)
        self.last_seq: OrderedDict[str, int] = OrderedDict()
        for workspace in self.workspaces:
            await self.channel_layer.group_add(realtime.workspace_group(workspace), self.channel_name)
        await self.login_session_join()
        self.count_connection()
        await self.send_json({"type": "subscribed", "scope": self.scope_name, **self.subscribed})
        await self.connected()

    async def connected(self) -> None:
        """Subscribed: anything to send before live events flow (they wait in the channel meanwhile)."""

    async def disconnect(self, code) -> None:
        for workspace in getattr(self, "workspaces", []):
            await self.channel_layer.group_discard(realtime.workspace_group(workspace), self.channel_name)
        await self.login_session_leave()
        await super().disconnect(code)

    def authorize(self, user) -> tuple[list[str], dict] | None:
        """(workspace ids to join, what to tell the client), or None to refuse. Runs in a thread."""
        raise NotImplementedError

    def wants(self, event: dict) -> bool:
        raise NotImplementedError

    async def receive_json(self, content, **kwargs) -> None:
        action = content.get("action") if isinstance(content, dict) else None
        if action == "ping":
            await self.pong()
        elif action == "resume":
            await self._resume(content)
        else:
            await self.send_json({"type": "error", "detail": 'Send {"action": "ping"} or {"action": "resume", ...}.'})

    async def _resume(self, content: dict) -> None:
        run_id, after = _uuid(content.get("run")), content.get("after_seq", 0)
        if run_id is None or not isinstance(after, int) or isinstance(after, bool) or after < 0:
            await self.send_json({"type": "error", "detail": "resume needs a run id and an after_seq of 0 or more."})
            return
        self.last_seq.pop(run_id, None)
        last = after
        while True:
            events = await _run_events(run_id, last)
            events = [event for event in events if event["workspace"] in self.workspaces and self.wants(event)]
            for event in events:
                await self.send_json(event)
                last = event["seq"]
            if len(events) < REPLAY_PAGE:
                break
        self._remember(run_id, last)
        await self.send_json({"type": "resumed", "run": run_id, "seq": last})

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every handler, a hop onto that one
        # thread. Run events reach the database only through _run_events, which closes its own, and
        # there are many of them: with 100 clients they queued there for over a second.
        if message["type"] == realtime.MESSAGE_TYPE:
            await self.run_events(message)
        else:
            await super().dispatch(message)

    async def run_events(self, message: dict) -> None:
        """A transaction's events, from workflows.realtime through the channel layer."""
        for event in message["events"]:
            if not self.wants(event):
                continue
            if event["seq"] is None:  # a workflow's event, not a run's
                await self.send_json(event)
            else:
                await self._deliver(event)

    async def _deliver(self, event: dict) -> None:
        run_id, seq = event["run"], event["seq"]
        last = self.last_seq.get(run_id)
        if last is not None and seq <= last:
            return  # sent already (a replay or a resume got there first)
        missed: list[dict] = []
        if last is None and seq > 1:
            # A run first seen here: what it emitted since this client connected, it gets too.
            missed = await _run_events(run_id, 0, since=self.connected_at - CONNECT_MARGIN, before=seq)
        elif last is not None and seq > last + 1:
            missed = await _run_events(run_id, last, before=seq)
        for earlier in missed:
            await self.send_json(earlier)
        await self.send_json(event)
        self._remember(run_id, seq)

    def _remember(self, run_id: str, seq: int) -> None:
        self.last_seq[run_id] = seq
        self.last_seq.move_to_end(run_id)
        if len(self.last_seq) > TRACKED_RUNS:
            self.last_seq.popitem(last=False)


class RunConsumer(RunEventsConsumer):
    """/ws/runs/<id>/[?after_seq=N]: the events of one run; with after_seq, its log after N first.

    after_seq in the URL resumes atomically with the connection: nothing of the run is sent before.
    """

    scope_name = "run"

    async def connected(self) -> None:
        after = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("after_seq")
        if after:
            seq = int(after[0]) if after[0].isdigit() else -1
            await self._resume({"run": self.run_id, "after_seq": seq})

    async def _resume(self, content: dict) -> None:
        # On a run's own socket the run goes without saying (DESIGN §9's {"action": "resume", "after_seq": N}),
        # and no other run can be named.
        await super()._resume({**content, "run": self.run_id})

    def authorize(self, user) -> tuple[list[str], dict] | None:
        run_id = _uuid(self.scope["url_route"]["kwargs"]["run_id"])
        run = Run.objects.filter(pk=run_id).only("workspace_id").first() if run_id else None
        if run is None or workspace_for_member(user, run.workspace_id) is None:
            return None
        self.run_id = run_id
        return [str(run.workspace_id)], {"run": run_id}

    def wants(self, event: dict) -> bool:
        return event["run"] == self.run_id


class WorkflowConsumer(RunEventsConsumer):
    """/ws/workflows/<id>/: the events of every run of one workflow, and of the workflow itself."""

    scope_name = "workflow"

    def authorize(self, user) -> tuple[list[str], dict] | None:
        workflow_id = _uuid(self.scope["url_route"]["kwargs"]["workflow_id"])
        workflow = (
            Workflow.objects.filter(pk=workflow_id, deleted_at__isnull=True).only("workspace_id").first()
            if workflow_id
            else None
        )
        if workflow is None or workspace_for_member(user, workflow.workspace_id) is None:
            return None
        self.workflow_id = workflow_id
        return [str(workflow.workspace_id)], {"workflow": workflow_id}

    def wants(self, event: dict) -> bool:
        # No workflow: an event about all of the workspace's (its runs paused), this one's included.
        return event["workflow"] in (self.workflow_id, None)


class DashboardConsumer(RunEventsConsumer):
    """/ws/dashboard/[?workspace=<id>]: the events of every run and workflow of the user's workspaces (or
    of one)."""

    scope_name = "dashboard"

    def authorize(self, user) -> tuple[list[str], dict] | None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if "workspace" in query:
            workspace = workspace_for_member(user, _uuid(query["workspace"][0]))
            if workspace is None:
                return None
            workspaces = [str(workspace.pk)]
        else:
            workspaces = [str(pk) for pk in workspaces_for_user(user).values_list("pk", flat=True)]
        return workspaces, {"workspaces": workspaces}

    def wants(self, event: dict) -> bool:
        return True


class NotificationsConsumer(LoginSessionBound, AuthenticatedConsumer):
    """/ws/notifications/: the user's own inbox changes (group `user.<id>`, sent by notifications.realtime)."""

    async def connect(self) -> None:
        realtime.attach(asyncio.get_running_loop())
        user = await self.accept_user()
        if user is None:
            return
        self.group = f"user.{user.pk}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.login_session_join()
        self.count_connection()
        await self.send_json({"type": "subscribed", "scope": "notifications", "user": str(user.pk)})

    async def disconnect(self, code) -> None:
        if self.counted:  # set up completely: a refused connection joined nothing
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.login_session_leave()
        await super().disconnect(code)

    async def notification_created(self, message: dict) -> None:
        await self.send_json(message["event"])

    async def notification_read(self, message: dict) -> None:
        await self.send_json(message["event"])
