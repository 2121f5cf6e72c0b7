"""Pause and resume a run, a workflow's runs and a workspace's runs, and drain the engine: through the
API, a real Celery worker executing the runs, local HTTP servers counting the calls the steps make."""

import threading
import time
from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from werkzeug import Response

from accounts.access import personal_workspace
from audit.models import AuditEvent
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory
from tests.processes import wait_until
from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.helpers import create
from workflows.models import EngineDrain, Run, RunEvent, StepRun

pytestmark = pytest.mark.django_db(transaction=True)


class CountingServer:
    """Counts calls per path; `/slow` answers after `slow_seconds`, or when `release` is set."""

    def __init__(self, server, slow_seconds: float = 1.0) -> None:
        self.server, self.calls, self.lock = server, Counter(), threading.Lock()
        self.slow_seconds, self.release = slow_seconds, threading.Event()
        server.expect_request("/slow").respond_with_handler(self._slow)
        server.expect_request("/count").respond_with_handler(self._count)

    def _slow(self, request) -> Response:
        with self.lock:
            self.calls["/slow"] += 1
        self.release.wait(self.slow_seconds)
        return Response('{"ok": true}', content_type="application/json")

    def _count(self, request) -> Response:
        with self.lock:
            self.calls["/count"] += 1
        return Response('{"ok": true}', content_type="application/json")

    def url(self, path: str) -> str:
        return self.server.url_for(path)


@pytest.fixture
def peer(threaded_server):
    counting = CountingServer(threaded_server)
    yield counting
    counting.release.set()


def slow_then_count(peer: CountingServer, **fields) -> dict:
    return {
        "name": fields.pop("name", "Slow then count"),
        "nodes": [
            {"key": "slow", "type": "http_request", "config": {"url": peer.url("/slow")}},
            {"key": "middle", "type": "text", "content": "between"},
            {"key": "count", "type": "http_request", "config": {"url": peer.url("/count")}},
        ],
        **fields,
    }


def start(api, workflow_id) -> str:
    answer = api.post(f"/api/v3/workflows/{workflow_id}/runs", {"input": {}}, format="json")
    assert answer.status_code == 202, answer.content
    return answer.json()["id"]


def step(run_id, key: str) -> StepRun:
    return StepRun.objects.get(run_id=run_id, node_key=key)


def event_types(run_id) -> list[str]:
    return list(RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("type", flat=True))


def test_a_paused_run_starts_no_step_and_resumes_where_it_stopped(engine_worker, user_api, peer):
    workflow = create(user_api, slow_then_count(peer))
    run_id = start(user_api, workflow["id"])
    wait_until(lambda: step(run_id, "slow").status == "running", 15, message="slow step running")

    answer = user_api.post(f"/api/v3/runs/{run_id}/pause")
    assert answer.status_code == 202, answer.content
    assert answer.json()["status"] == "paused"
    assert answer.json()["pause_scope"] == "run"

    # The running step finishes and is recorded; the next one does not start.
    wait_until(lambda: step(run_id, "slow").status == "succeeded", 15, message="slow step finished")
    time.sleep(1.0)
    assert step(run_id, "middle").status == "pending"
    assert Run.objects.get(pk=run_id).status == "paused"
    assert peer.calls["/count"] == 0
    assert user_api.post(f"/api/v3/runs/{run_id}/pause").status_code == 409

    answer = user_api.post(f"/api/v3/runs/{run_id}/resume")
    assert answer.status_code == 202, answer.content
    run = wait_for_run(run_id, timeout=20)
    assert run.status == "succeeded", run.error
    assert (peer.calls["/slow"], peer.calls["/count"]) == (1, 1)
    assert step(run_id, "slow").attempt == 1
    types = event_types(run_id)
    assert types.index("run.paused") < types.index("run.resumed") < types.index("run.succeeded")
    paused = RunEvent.objects.get(run_id=run_id, type="run.paused")
    assert paused.data["finishing"] == ["slow"] and paused.data["stopped"] == []
    assert AuditEvent.objects.filter(action="run.paused", target_id=str(run_id)).count() == 1
    assert AuditEvent.objects.filter(action="run.resumed", target_id=str(run_id)).count() == 1
    assert user_api.post(f"/api/v3/runs/{run_id}/resume").status_code == 409


def test_pause_now_stops_a_running_step_that_is_safe_to_rerun_and_resume_runs_it_again(engine_worker, user_api, peer):
    peer.slow_seconds = 30
    workflow = create(user_api, slow_then_count(peer))
    run_id = start(user_api, workflow["id"])
    wait_until(lambda: peer.calls["/slow"] == 1, 15, message="slow call made")

    answer = user_api.post(f"/api/v3/runs/{run_id}/pause?now=true")
    assert answer.status_code == 202, answer.content
    stopped = step(run_id, "slow")
    assert (stopped.status, stopped.attempt) == ("queued", 2)
    assert RunEvent.objects.get(run_id=run_id, type="run.paused").data["stopped"] == ["slow"]

    peer.release.set()  # the first call answers now: its result must be dropped, not recorded
    time.sleep(1.0)
    assert step(run_id, "slow").status == "queued"
    assert step(run_id, "middle").status == "pending"

    assert user_api.post(f"/api/v3/runs/{run_id}/resume").status_code == 202
    run = wait_for_run(run_id, timeout=20)
    assert run.status == "succeeded", run.error
    assert peer.calls["/slow"] == 2 and peer.calls["/count"] == 1
    assert RunEvent.objects.filter(run_id=run_id, type="step.succeeded", step="slow").count() == 1


def test_pause_now_lets_a_step_that_is_not_safe_to_rerun_finish(engine_worker, user_api, peer):
    body = slow_then_count(peer)
    body["nodes"][0]["config"]["method"] = "POST"
    workflow = create(user_api, body)
    run_id = start(user_api, workflow["id"])
    wait_until(lambda: peer.calls["/slow"] == 1, 15, message="slow call made")

    assert user_api.post(f"/api/v3/runs/{run_id}/pause?now=1").status_code == 202
    assert RunEvent.objects.get(run_id=run_id, type="run.paused").data["finishing"] == ["slow"]
    wait_until(lambda: step(run_id, "slow").status == "succeeded", 15, message="the POST finished")
    assert step(run_id, "slow").attempt == 1
    assert user_api.post(f"/api/v3/runs/{run_id}/resume").status_code == 202
    assert wait_for_run(run_id, timeout=20).status == "succeeded"
    assert peer.calls["/slow"] == 1


def test_a_delay_keeps_its_deadline_while_the_run_is_paused(engine_worker, user_api):
    workflow = create(
        user_api,
        {
            "name": "Delay",
            "nodes": [{"key": "wait", "type": "delay", "config": {"seconds": 2}}, {"key": "after", "content": "x"}],
        },
    )
    run_id = start(user_api, workflow["id"])
    wait_until(lambda: step(run_id, "wait").status == "waiting", 15, message="delay waiting")
    assert user_api.post(f"/api/v3/runs/{run_id}/pause").status_code == 202
    time.sleep(3.0)  # the delay ends while the run is paused
    assert step(run_id, "after").status == "pending"

    resumed = time.monotonic()
    assert user_api.post(f"/api/v3/runs/{run_id}/resume").status_code == 202
    assert wait_for_run(run_id, timeout=20).status == "succeeded"
    # It did not wait its two seconds again.
    assert time.monotonic() - resumed < 1.8


def test_a_paused_run_holds_no_concurrency_slot(engine_worker, user_api):
    workflow = create(
        user_api,
        {
            "name": "One at a time",
            "settings": {"max_concurrency": 1},
            "nodes": [{"key": "wait", "type": "delay", "config": {"seconds": 60}}],
        },
    )
    first = start(user_api, workflow["id"])
    wait_until(lambda: Run.objects.get(pk=first).status == "waiting", 15, message="first waiting")
    assert user_api.post(f"/api/v3/runs/{first}/pause").status_code == 202

    second = start(user_api, workflow["id"])
    wait_until(lambda: Run.objects.get(pk=second).status == "waiting", 15, message="second took the slot")

    # Resumed, the first waits for the slot the second holds, and takes it when the second ends.
    assert user_api.post(f"/api/v3/runs/{first}/resume").json()["status"] == "queued"
    assert user_api.post(f"/api/v3/runs/{second}/cancel").status_code == 202
    wait_until(lambda: Run.objects.get(pk=first).status == "waiting", 15, message="first back in the slot")
    assert step(first, "wait").attempt == 1


def test_a_workflows_runs_pause_holds_new_runs_and_resume_starts_them_oldest_first(engine_worker, user_api, peer):
    workflow = create(user_api, slow_then_count(peer))
    running = start(user_api, workflow["id"])
    wait_until(lambda: step(running, "slow").status == "running", 15, message="slow step running")

    answer = user_api.post(f"/api/v3/workflows/{workflow['id']}/runs-pause")
    assert answer.status_code == 201, answer.content
    assert (
        answer.json()["paused"] is True and answer.json()["paused_by"] == Run.objects.get(pk=running).created_by.email
    )
    assert user_api.post(f"/api/v3/workflows/{workflow['id']}/runs-pause").status_code == 409
    assert Run.objects.get(pk=running).status == "paused"
    assert Run.objects.get(pk=running).pause_scope == "workflow"

    # Triggers are accepted and recorded; their runs wait.
    held = [start(user_api, workflow["id"]) for _ in range(3)]
    time.sleep(1.5)
    assert set(Run.objects.filter(pk__in=held).values_list("status", flat=True)) == {"queued"}
    assert peer.calls["/count"] == 0
    # A run the workflow's pause paused resumes with the workflow.
    assert user_api.post(f"/api/v3/runs/{running}/resume").status_code == 409
    assert user_api.get(f"/api/v3/workflows/{workflow['id']}/runs-pause").json()["paused"] is True

    answer = user_api.delete(f"/api/v3/workflows/{workflow['id']}/runs-pause")
    assert answer.status_code == 200, answer.content
    assert answer.json()["paused"] is False
    for run_id in [running, *held]:
        assert wait_for_run(run_id, timeout=30).status == "succeeded"
    assert peer.calls["/count"] == 4
    starts = [Run.objects.get(pk=run_id).started_at for run_id in held]
    assert starts == sorted(starts)
    assert user_api.delete(f"/api/v3/workflows/{workflow['id']}/runs-pause").status_code == 409
    actions = AuditEvent.objects.filter(target_id=workflow["id"]).values_list("action", flat=True)
    assert {"workflow.runs_paused", "workflow.runs_resumed"} <= set(actions)


def test_a_workspaces_runs_pause_is_for_admins_and_holds_every_workflow(engine_worker, user, user_api, peer):
    workspace = personal_workspace(user)
    editor = UserFactory()
    MembershipFactory(user=editor, workspace=workspace, role="editor")
    editor_api = client_for(editor)
    first = create(user_api, slow_then_count(peer, name="First"))
    second = create(user_api, slow_then_count(peer, name="Second"))

    assert editor_api.post(f"/api/v3/workspaces/{workspace.pk}/runs-pause").status_code == 403
    assert client_for(UserFactory()).post(f"/api/v3/workspaces/{workspace.pk}/runs-pause").status_code == 404
    assert user_api.post(f"/api/v3/workspaces/{workspace.pk}/runs-pause").status_code == 201
    # The workflow's own pause and the workspace's overlap: lifting the workflow's keeps the runs held.
    assert user_api.post(f"/api/v3/workflows/{first['id']}/runs-pause").status_code == 201
    runs = [start(user_api, first["id"]), start(user_api, second["id"])]
    assert user_api.delete(f"/api/v3/workflows/{first['id']}/runs-pause").status_code == 200
    time.sleep(1.0)
    assert set(Run.objects.filter(pk__in=runs).values_list("status", flat=True)) == {"queued"}

    assert editor_api.delete(f"/api/v3/workspaces/{workspace.pk}/runs-pause").status_code == 403
    assert user_api.delete(f"/api/v3/workspaces/{workspace.pk}/runs-pause").status_code == 200
    for run_id in runs:
        assert wait_for_run(run_id, timeout=30).status == "succeeded"
    actions = set(AuditEvent.objects.filter(target_id=str(workspace.pk)).values_list("action", flat=True))
    assert {"workspace.runs_paused", "workspace.runs_resumed"} <= actions


def test_run_pause_refuses_bad_input_and_the_wrong_people(engine_worker, user, user_api):
    workflow = create(
        user_api, {"name": "Wait", "nodes": [{"key": "wait", "type": "delay", "config": {"seconds": 60}}]}
    )
    run_id = start(user_api, workflow["id"])
    viewer = UserFactory()
    MembershipFactory(user=viewer, workspace=personal_workspace(user), role="viewer")

    answer = user_api.post(f"/api/v3/runs/{run_id}/pause?now=maybe")
    assert answer.status_code == 400 and "now" in answer.json()["errors"]
    assert client_for(viewer).post(f"/api/v3/runs/{run_id}/pause").status_code == 403
    assert client_for(UserFactory()).post(f"/api/v3/runs/{run_id}/pause").status_code == 404
    assert user_api.post(f"/api/v3/runs/{run_id}/resume").status_code == 409
    assert Run.objects.get(pk=run_id).status in ("running", "waiting")
    assert not AuditEvent.objects.filter(action__in=["run.paused", "run.resumed"]).exists()

    assert user_api.post(f"/api/v3/runs/{run_id}/cancel").status_code == 202
    assert user_api.post(f"/api/v3/runs/{run_id}/pause").status_code == 409


def test_the_engine_drains_for_staff_holds_every_step_and_resume_releases_them(engine_worker, client, user_api, peer):
    staff_api = client_for(UserFactory(is_staff=True))
    assert user_api.post("/api/v3/engine/drain").status_code == 403
    assert user_api.get("/api/v3/engine").status_code == 403

    answer = staff_api.post("/api/v3/engine/drain", {"reason": "deploy 42"}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["draining"] is True and answer.json()["reason"] == "deploy 42"
    assert staff_api.post("/api/v3/engine/drain").status_code == 409
    assert client.get("/status").json()["engine"]["draining"] is True

    workflow = create(user_api, slow_then_count(peer))
    run_id = start(user_api, workflow["id"])  # accepted while draining
    time.sleep(1.5)
    assert step(run_id, "slow").status == "queued"
    assert peer.calls["/slow"] == 0
    assert staff_api.get("/api/v3/engine").json()["held_steps"] >= 1

    answer = staff_api.post("/api/v3/engine/resume")
    assert answer.status_code == 200 and answer.json()["draining"] is False
    assert wait_for_run(run_id, timeout=20).status == "succeeded"
    assert staff_api.post("/api/v3/engine/resume").status_code == 409
    assert client.get("/status").json()["engine"]["draining"] is False
    actions = list(AuditEvent.objects.filter(action__startswith="engine.").values_list("action", flat=True))
    assert sorted(actions) == ["engine.drained", "engine.resumed"]


def test_the_engine_command_drains_reports_and_resumes(capsys):
    call_command("engine", "drain", "--reason", "incident 7")
    assert "draining since" in capsys.readouterr().out
    assert EngineDrain.objects.get().reason == "incident 7"
    with pytest.raises(CommandError, match="draining already"):
        call_command("engine", "drain")
    call_command("engine", "status")
    assert "incident 7" in capsys.readouterr().out
    call_command("engine", "resume")
    assert "engine: running" in capsys.readouterr().out
    assert not EngineDrain.objects.exists()
    with pytest.raises(CommandError, match="not draining"):
        call_command("engine", "resume")
