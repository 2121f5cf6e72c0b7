"""Websocket consumers through the real ASGI stack (auth middleware, origin check) and Redis channel layer."""

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client
from prometheus_client import REGISTRY
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Membership
from config.asgi import application
from tests.conftest import client_for
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.workflows.helpers import create
from workflows import realtime
from workflows.engine.transition import transition
from workflows.events import envelope
from workflows.models import Run, RunEvent
from workflows.services.runs import run_trigger

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


def socket(path: str, user=None, *, cookie: str | None = None) -> WebsocketCommunicator:
    if user is not None:
        path += ("&" if "?" in path else "?") + f"token={AccessToken.for_user(user)}"
    headers = [ORIGIN] + ([(b"cookie", cookie.encode())] if cookie else [])
    return WebsocketCommunicator(application, path, headers=headers)


def started_run(user) -> Run:
    """A run nobody executes (no worker here): its events come from `emit_events`."""
    body = {"name": "Watched", "nodes": [{"key": "wait", "type": "delay", "config": {"seconds": 600}}]}
    workflow = create(client_for(user), body)
    from workflows.models import Workflow

    run, _ = run_trigger(workflow=Workflow.objects.get(pk=workflow["id"]), input={}, trigger="api", actor=user)
    return run


@sync_to_async
def emit_events(run_id, count: int, step: str = "wait") -> list[int]:
    """Append step.delta events the way the engine does: under the run's lock, published on commit."""
    with transition() as tx:
        run = tx.lock(run_id)
        for index in range(count):
            tx.emit(run, "step.delta", step=step, data={"text": f"chunk {index}"})
    return list(RunEvent.objects.filter(run_id=run_id).values_list("seq", flat=True).order_by("seq"))


async def receive_until(communicator, predicate, timeout: float = 5) -> list[dict]:
    received = []
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        received.append(message)
        if predicate(message):
            return received


async def connected(communicator) -> dict:
    ok, _ = await communicator.connect()
    assert ok
    return await communicator.receive_json_from(timeout=5)


def closed_with(path: str, user=None, **kwargs) -> int:
    async def scenario():
        communicator = socket(path, user, **kwargs)
        await communicator.connect()
        output = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return output

    output = async_to_sync(scenario)()
    assert output["type"] == "websocket.close"
    return output["code"]


def test_anonymous_and_forged_connections_are_closed_with_4401(user):
    run = started_run(user)
    for path in (f"/ws/runs/{run.pk}/", "/ws/dashboard/", "/ws/notifications/", f"/ws/workflows/{run.workflow_id}/"):
        assert closed_with(path) == 4401
    assert closed_with(f"/ws/runs/{run.pk}/?token=forged") == 4401


def test_open_sockets_are_counted_until_they_close_and_refused_ones_never(user):
    run = started_run(user)
    paths = (f"/ws/runs/{run.pk}/", "/ws/dashboard/", "/ws/notifications/", f"/ws/workflows/{run.workflow_id}/")
    before = REGISTRY.get_sample_value("dwc_websocket_connections_active")

    async def scenario() -> float:
        communicators = [socket(path, user) for path in paths]
        for communicator in communicators:
            await connected(communicator)
        counted = REGISTRY.get_sample_value("dwc_websocket_connections_active")
        for communicator in communicators:
            await communicator.disconnect()
        return counted

    assert async_to_sync(scenario)() == before + len(paths)
    assert closed_with(f"/ws/runs/{run.pk}/", UserFactory()) == 4403
    assert REGISTRY.get_sample_value("dwc_websocket_connections_active") == before


def test_another_workspaces_run_or_workflow_is_4403_and_leaks_no_event(user):
    run = started_run(user)
    stranger = UserFactory()
    assert closed_with(f"/ws/runs/{run.pk}/", stranger) == 4403
    assert closed_with(f"/ws/workflows/{run.workflow_id}/", stranger) == 4403
    assert closed_with(f"/ws/dashboard/?workspace={run.workspace_id}", stranger) == 4403
    assert closed_with("/ws/runs/00000000-0000-0000-0000-000000000000/", user) == 4403
    assert closed_with("/ws/runs/not-a-uuid/", user) == 4403

    async def scenario():
        # The stranger's own dashboard (their personal workspace) hears nothing of the run.
        theirs = socket("/ws/dashboard/", stranger)
        hello = await connected(theirs)
        assert str(run.workspace_id) not in hello["workspaces"]
        mine = socket(f"/ws/runs/{run.pk}/", user)
        await connected(mine)
        await emit_events(run.pk, 2)
        received = await receive_until(mine, lambda e: e["data"].get("text") == "chunk 1")
        assert [event["data"].get("text") for event in received][-2:] == ["chunk 0", "chunk 1"]
        assert await theirs.receive_nothing(timeout=0.5)
        await theirs.disconnect()
        await mine.disconnect()

    async_to_sync(scenario)()


def test_a_viewer_may_watch_and_the_session_cookie_authenticates(user):
    run = started_run(user)
    viewer = UserFactory()
    MembershipFactory(user=viewer, workspace_id=run.workspace_id, role=Membership.Role.VIEWER)
    browser = Client()
    browser.force_login(viewer)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"

    async def scenario():
        communicator = socket(f"/ws/workflows/{run.workflow_id}/", cookie=cookie)
        hello = await connected(communicator)
        assert hello == {"type": "subscribed", "scope": "workflow", "workflow": str(run.workflow_id)}
        seqs = await emit_events(run.pk, 1)
        event = (await receive_until(communicator, lambda e: e["seq"] == seqs[-1]))[-1]
        assert (event["run"], event["type"], event["workflow"]) == (str(run.pk), "step.delta", str(run.workflow_id))
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_ping_is_answered_with_pong(user):
    async def scenario():
        communicator = socket("/ws/dashboard/", user)
        await connected(communicator)
        await communicator.send_json_to({"action": "ping"})
        assert (await communicator.receive_json_from(timeout=5))["type"] == "pong"
        await communicator.send_json_to({"action": "dance"})
        assert (await communicator.receive_json_from(timeout=5))["type"] == "error"
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_resume_replays_the_log_then_goes_live_without_gap_or_duplicate(user):
    run = started_run(user)

    async def scenario():
        communicator = socket(f"/ws/dashboard/?workspace={run.workspace_id}", user)
        await connected(communicator)
        await emit_events(run.pk, 2)  # seq 4 and 5, live
        await receive_until(communicator, lambda e: e.get("seq") == 5)
        await communicator.disconnect()
        await emit_events(run.pk, 2)  # seq 6 and 7, while the client is away

        communicator = socket(f"/ws/dashboard/?workspace={run.workspace_id}", user)
        await connected(communicator)
        await communicator.send_json_to({"action": "resume", "run": str(run.pk), "after_seq": 3})
        received = await receive_until(communicator, lambda e: e.get("type") == "resumed")
        await emit_events(run.pk, 1)
        received += await receive_until(communicator, lambda e: e.get("seq") == 8)
        assert [event["seq"] for event in received] == [4, 5, 6, 7, 7, 8]  # "resumed" carries seq 7
        assert received[4] == {"type": "resumed", "run": str(run.pk), "seq": 7}
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_resuming_while_the_run_is_busy_has_no_gap_or_duplicate_at_the_seam(user):
    run = started_run(user)
    async_to_sync(emit_events)(run.pk, 5)  # seq 4..8 happened before the client came back

    async def scenario():
        # The run keeps emitting while the client reconnects with resume-from-seq-2 in the URL.
        async def keep_emitting():
            for _ in range(10):
                await emit_events(run.pk, 1)
                await asyncio.sleep(0.01)

        emitting = asyncio.ensure_future(keep_emitting())
        communicator = socket(f"/ws/runs/{run.pk}/?after_seq=2", user)
        await connected(communicator)
        await emitting
        received = await receive_until(communicator, lambda e: e.get("seq") == 18)
        seqs = [event["seq"] for event in received if event["type"] != "resumed"]
        assert seqs == list(range(3, 19))
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_gap_in_what_arrives_is_filled_from_the_log(user):
    """Events of one run published by different processes may arrive out of order."""
    run = started_run(user)

    async def scenario():
        communicator = socket(f"/ws/dashboard/?workspace={run.workspace_id}", user)
        await connected(communicator)
        await communicator.send_json_to({"action": "resume", "run": str(run.pk), "after_seq": 0})
        await receive_until(communicator, lambda e: e.get("type") == "resumed")

        @sync_to_async
        def write_three_publish_last():
            with transition() as tx:
                locked = tx.lock(run.pk)
                for index in range(3):
                    tx.emit(locked, "step.delta", step="wait", data={"text": str(index)})
            events = RunEvent.objects.filter(run=run).order_by("-seq")
            return [envelope(event, run) for event in events[:1]]

        # Only the newest of three new events is broadcast (the others "arrive later").
        newest = await write_three_publish_last()
        await get_channel_layer().group_send(
            realtime.workspace_group(run.workspace_id), {"type": realtime.MESSAGE_TYPE, "events": newest}
        )
        received = await receive_until(communicator, lambda e: e.get("seq") == newest[0]["seq"])
        assert [event["data"]["text"] for event in received if event["type"] == "step.delta"][-3:] == ["0", "1", "2"]
        await asyncio.sleep(0.2)
        # The real broadcast of the three arrives now and is dropped: nothing twice.
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_bad_resume_requests_get_an_error_not_a_crash(user):
    async def scenario():
        communicator = socket("/ws/dashboard/", user)
        await connected(communicator)
        for bad in ({"action": "resume"}, {"action": "resume", "run": "x", "after_seq": 1}, [1, 2]):
            await communicator.send_json_to(bad)
            assert (await communicator.receive_json_from(timeout=5))["type"] == "error"
        await communicator.send_json_to({"action": "resume", "run": "00000000-0000-0000-0000-000000000000"})
        assert (await communicator.receive_json_from(timeout=5))["type"] == "resumed"
        await communicator.disconnect()

    async_to_sync(scenario)()


# The sync test client reads the async stream synchronously (and says so); daphne streams it (see e2e).
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_the_events_endpoint_streams_sse_for_a_finished_run_and_honours_last_event_id(user, user_api):
    run = started_run(user)
    async_to_sync(emit_events)(run.pk, 2)
    user_api.post(f"/api/v3/runs/{run.pk}/cancel")

    answer = user_api.get(f"/api/v3/runs/{run.pk}/events", HTTP_ACCEPT="text/event-stream")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "text/event-stream"
    body = b"".join(answer).decode()
    frames = [frame for frame in body.split("\n\n") if frame.startswith("id:")]
    ids = [int(frame.split("\n")[0].removeprefix("id: ")) for frame in frames]
    assert ids == list(range(1, len(ids) + 1))
    assert frames[-1].split("\n")[1] == "event: run.cancelled"

    resumed = user_api.get(f"/api/v3/runs/{run.pk}/events", HTTP_ACCEPT="text/event-stream", HTTP_LAST_EVENT_ID="4")
    resumed_ids = [line for line in b"".join(resumed).decode().splitlines() if line.startswith("id:")]
    assert resumed_ids[0] == "id: 5" and len(resumed_ids) == len(ids) - 4

    # Without the Accept header it stays the JSON list; bad input and strangers get problems.
    assert [event["seq"] for event in user_api.get(f"/api/v3/runs/{run.pk}/events?after_seq=4").json()] == ids[4:]
    assert user_api.get(f"/api/v3/runs/{run.pk}/events?after_seq=-1").status_code == 400
    stranger = client_for(UserFactory())
    assert stranger.get(f"/api/v3/runs/{run.pk}/events", HTTP_ACCEPT="text/event-stream").status_code == 404


def test_a_foreign_origin_is_refused_before_anything_else(user):
    run = started_run(user)

    async def scenario():
        token = AccessToken.for_user(user)
        communicator = WebsocketCommunicator(
            application, f"/ws/runs/{run.pk}/?token={token}", headers=[(b"origin", b"https://evil.example")]
        )
        connected, _ = await communicator.connect()
        assert connected is False  # the handshake is refused: no accept, no event
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_an_access_token_of_a_logged_out_session_opens_no_websocket(user):
    api = Client()
    login = {"email": user.email, "password": PASSWORD}
    tokens = api.post("/api/v3/auth/token", login, content_type="application/json").json()

    async def opens() -> bool:
        communicator = WebsocketCommunicator(application, f"/ws/dashboard/?token={tokens['access']}", headers=[ORIGIN])
        accepted, _ = await communicator.connect()
        await communicator.disconnect()
        return accepted

    assert async_to_sync(opens)()
    api.post("/api/v3/auth/logout", {"refresh": tokens["refresh"]}, content_type="application/json")
    assert closed_with(f"/ws/dashboard/?token={tokens['access']}") == 4401
