"""A workflow's own events (saved, deleted, restored, its runs paused) reach the websockets of its
workspace after the change commits, through the real ASGI stack and the Redis channel layer: the
dashboard's socket, the workflow's, never a run's, never another workspace's."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from accounts.access import personal_workspace
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.workflows.helpers import create
from tests.workflows.test_consumers import connected, socket, started_run

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"name": "Watched", "nodes": [{"key": "a", "type": "text", "content": "A"}]}
CHANGED = {"name": "Watched", "nodes": [{"key": "a", "type": "text", "content": "B"}]}
SILENCE = 0.5  # long enough for a message that was coming: the channel layer delivers in milliseconds


def call(api, method: str, path: str, body: dict | None = None, status: int = 200) -> dict:
    answer = getattr(api, method)(f"/api/v3/{path}", body, format="json")
    assert answer.status_code == status, answer.content
    return answer.json() if answer.content else {}


async def next_event(communicator) -> dict:
    event = await communicator.receive_json_from(timeout=5)
    assert (event["seq"], event["run"], event["step"]) == (None, None, None), event
    return event


def test_saving_deleting_and_restoring_reach_the_workspace_and_workflow_sockets_only(user):
    api = client_for(user)
    workspace = str(personal_workspace(user).pk)
    run = started_run(user)  # another workflow's run, watched on its own socket
    stranger = UserFactory()

    async def scenario():
        dashboard = socket(f"/ws/dashboard/?workspace={workspace}", user)
        run_socket = socket(f"/ws/runs/{run.pk}/", user)
        theirs = socket("/ws/dashboard/", stranger)
        for communicator in (dashboard, run_socket, theirs):
            await connected(communicator)

        workflow = await sync_to_async(create)(api, BODY)
        created = await next_event(dashboard)
        assert {key: created[key] for key in ("type", "workspace", "workflow", "data")} == {
            "type": "workflow.created",
            "workspace": workspace,
            "workflow": workflow["id"],
            "data": {"by": user.email, "name": "Watched", "status": workflow["status"], "version": 1},
        }

        own = socket(f"/ws/workflows/{workflow['id']}/", user)
        await connected(own)
        await sync_to_async(call)(api, "put", f"workflows/{workflow['id']}", CHANGED)
        for communicator in (dashboard, own):
            updated = await next_event(communicator)
            assert (updated["type"], updated["data"]["version"], updated["data"]["by"]) == (
                "workflow.updated",
                2,
                user.email,
            )
        # Once per save, though both the version and the audit record changed.
        assert await own.receive_nothing(timeout=SILENCE)

        # A save with nothing new says nothing; a refused one neither.
        await sync_to_async(call)(api, "put", f"workflows/{workflow['id']}", CHANGED)
        await sync_to_async(call)(api, "patch", f"workflows/{workflow['id']}", {"name": ""}, status=400)
        assert await own.receive_nothing(timeout=SILENCE)

        await sync_to_async(call)(api, "post", f"workflows/{workflow['id']}/nodes", {"key": "b", "content": "B"}, 201)
        assert (await next_event(own))["data"]["version"] == 3

        await sync_to_async(call)(api, "delete", f"workflows/{workflow['id']}", status=204)
        deleted = await next_event(own)
        assert (deleted["type"], deleted["data"]) == ("workflow.deleted", {"by": user.email, "name": "Watched"})
        await sync_to_async(call)(api, "post", f"workflows/{workflow['id']}/restore")
        restored = await next_event(own)
        assert (restored["type"], restored["workflow"], restored["data"]["version"]) == (
            "workflow.restored",
            workflow["id"],
            3,
        )

        assert [message["type"] for message in await drained(dashboard)] == [
            "workflow.updated",  # node b
            "workflow.deleted",
            "workflow.restored",
        ]
        assert await run_socket.receive_nothing(timeout=SILENCE)
        assert await theirs.receive_nothing(timeout=SILENCE)
        for communicator in (dashboard, run_socket, theirs, own):
            await communicator.disconnect()

    async_to_sync(scenario)()


async def drained(communicator) -> list[dict]:
    """What else the socket got, in order."""
    messages = []
    while not await communicator.receive_nothing(timeout=SILENCE):
        messages.append(await communicator.receive_json_from())
    return messages


def test_pausing_a_workflows_or_its_workspaces_runs_is_told_to_the_workflows_socket(user):
    api = client_for(user)
    workflow = create(api, BODY)
    workspace = str(personal_workspace(user).pk)

    async def scenario():
        own = socket(f"/ws/workflows/{workflow['id']}/", user)
        await connected(own)
        seen = []
        for method, path, status in [
            ("post", f"workflows/{workflow['id']}/runs-pause", 201),
            ("delete", f"workflows/{workflow['id']}/runs-pause", 200),
            ("post", f"workspaces/{workspace}/runs-pause", 201),
            ("delete", f"workspaces/{workspace}/runs-pause", 200),
        ]:
            await sync_to_async(call)(api, method, path, status=status)
            event = await next_event(own)
            seen.append((event["type"], event["workflow"], event["data"]))
        by = {"by": user.email}
        assert seen == [
            ("workflow.runs_paused", workflow["id"], by),
            ("workflow.runs_resumed", workflow["id"], by),
            ("workspace.runs_paused", None, by),
            ("workspace.runs_resumed", None, by),
        ]
        await own.disconnect()

    async_to_sync(scenario)()


def test_a_bulk_change_tells_each_workflow_in_one_message(user):
    api = client_for(user)
    workflows = [create(api, {**BODY, "name": f"Bulk {n}"}) for n in range(2)]
    ids = [workflow["id"] for workflow in workflows]
    workspace = str(personal_workspace(user).pk)

    async def scenario():
        dashboard = socket(f"/ws/dashboard/?workspace={workspace}", user)
        await connected(dashboard)
        await sync_to_async(call)(api, "post", "workflows/bulk", {"action": "archive", "ids": ids})
        archived = [await next_event(dashboard) for _ in ids]
        assert sorted((event["workflow"], event["type"], event["data"]["status"]) for event in archived) == sorted(
            (id_, "workflow.updated", "archived") for id_ in ids
        )
        await sync_to_async(call)(api, "post", "workflows/bulk", {"action": "delete", "ids": ids})
        deleted = [await next_event(dashboard) for _ in ids]
        assert sorted((event["workflow"], event["type"]) for event in deleted) == sorted(
            (id_, "workflow.deleted") for id_ in ids
        )
        assert await dashboard.receive_nothing(timeout=SILENCE)
        await dashboard.disconnect()

    async_to_sync(scenario)()
