"""Node types that wait, branch into other runs, or ask people — run by a real worker."""

import hashlib
import hmac
import threading
import time

import pytest
from werkzeug import Response

from accounts.models import Membership, Workspace
from analytics.models import Event
from tests.conftest import client_for
from tests.factories import MembershipFactory
from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.engine.test_runs import start, steps_of
from tests.workflows.helpers import create
from workflows.engine import recovery
from workflows.models import Run
from workflows.services.credentials import credential_save

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_loop_runs_each_item_with_bounded_concurrency(engine_worker, user_api, threaded_server):
    httpserver = threaded_server
    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow(request):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.4)
        with lock:
            in_flight[0] -= 1
        return Response(f'{{"item": {request.args["item"]}}}', content_type="application/json")

    httpserver.expect_request("/item").respond_with_handler(slow)
    child = create(
        user_api,
        {
            "name": "Per item",
            "id": "per-item",
            "nodes": [
                {
                    "key": "call",
                    "type": "http_request",
                    "config": {"url": httpserver.url_for("/item"), "query": {"item": "{{ input.n }}"}},
                }
            ],
        },
    )
    parent = create(
        user_api,
        {
            "name": "Loop",
            "nodes": [
                {
                    "key": "each",
                    "type": "loop",
                    "config": {
                        "items": "input.numbers",
                        "workflow": "per-item",
                        "input": {"n": "{{ item * 10 }}", "position": "{{ index }}"},
                        "concurrency": 2,
                    },
                }
            ],
        },
    )
    run = wait_for_run(start(user_api, parent["id"], {"numbers": [1, 2, 3, 4, 5]})["id"], timeout=60)
    assert run.status == "succeeded", run.error
    output = steps_of(run.pk)["each"].output
    assert [item["call"]["body"] for item in output] == [{"item": n * 10} for n in range(1, 6)]
    assert peak[0] == 2
    children = Run.objects.filter(parent_step__run=run).order_by("parent_index")
    assert [c.input for c in children] == [{"n": n * 10, "position": n - 1} for n in range(1, 6)]
    assert {c.trigger for c in children} == {"subworkflow"} and child["id"] == str(children[0].workflow_id)


def test_a_subworkflow_returns_its_output_and_fails_with_it(engine_worker, user_api):
    create(
        user_api,
        {
            "name": "Child",
            "id": "child",
            "nodes": [
                {"key": "shout", "type": "transform", "config": {"values": {"loud": "{{ input.word|upper }}"}}},
                {
                    "key": "check",
                    "type": "transform",
                    "config": {"values": {"x": "{{ input.missing.deeper }}"}},
                    "depends_on": [],
                },
            ],
            "settings": {"on_failure": "continue"},
        },
    )
    parent = create(
        user_api,
        {
            "name": "Parent",
            "nodes": [
                {
                    "key": "call_child",
                    "type": "subworkflow",
                    "config": {"workflow": "child", "input": {"word": "{{ input.word }}", "missing": {"deeper": 1}}},
                }
            ],
        },
    )
    run = wait_for_run(start(user_api, parent["id"], {"word": "hi"})["id"])
    assert run.status == "succeeded", run.error
    assert steps_of(run.pk)["call_child"].output == {"check": {"x": 1}, "shout": {"loud": "HI"}}

    failing = create(
        user_api,
        {
            "name": "Parent 2",
            "nodes": [{"key": "call_child", "type": "subworkflow", "config": {"workflow": "child", "input": {}}}],
        },
    )
    run = wait_for_run(start(user_api, failing["id"])["id"])
    step = steps_of(run.pk)["call_child"]
    assert run.status == "failed"
    assert step.error["message"].startswith("The sub-workflow run failed")


def test_a_subworkflow_naming_a_missing_workflow_fails_the_step(engine_worker, user_api):
    # Saving refuses an unknown workflow, so the child goes missing after the parent was saved.
    child = create(user_api, {"name": "Gone", "id": "gone"})
    parent = create(
        user_api, {"name": "P", "nodes": [{"key": "call", "type": "subworkflow", "config": {"workflow": "gone"}}]}
    )
    assert user_api.delete(f"/api/v3/workflows/{child['id']}").status_code == 204
    run = wait_for_run(start(user_api, parent["id"])["id"])
    assert run.status == "failed"
    assert "does not exist" in steps_of(run.pk)["call"].error["message"]
    assert not Run.objects.filter(parent_step__isnull=False).exists()


APPROVAL = {
    "name": "Needs a yes",
    "nodes": [
        {"key": "ask", "type": "approval", "config": {"message": "Publish {{ input.title }}?"}},
        {"key": "publish", "type": "text", "content": "published {{ nodes.ask.output.by }}"},
    ],
}


def test_approval_waits_then_continues_when_approved(engine_worker, user, user_api):
    workflow = create(user_api, APPROVAL)
    run_id = start(user_api, workflow["id"], {"title": "Post"})["id"]
    run = wait_for_run(run_id, statuses={"waiting"})
    ask = steps_of(run_id)["ask"]
    assert ask.status == "waiting" and ask.input["config"]["message"] == "Publish Post?"

    answer = user_api.post(
        f"/api/v3/runs/{run_id}/steps/ask/approve", {"approved": True, "comment": "ok"}, format="json"
    )
    assert answer.status_code == 200, answer.content
    decided = Event.objects.get(type="approval.decided")  # counted by analytics once the decision committed
    assert (decided.subject, decided.data) == (f"{run_id}:ask", {"decision": "approved"})
    run = wait_for_run(run_id)
    assert run.status == "succeeded", run.error
    steps = steps_of(run_id)
    assert steps["ask"].output == {"approved": True, "by": user.email, "comment": "ok"}
    assert steps["publish"].output["content"] == f"published {user.email}"
    again = user_api.post(f"/api/v3/runs/{run_id}/steps/ask/approve", {"approved": True}, format="json")
    assert again.status_code == 409


def test_approval_rejected_fails_the_run(engine_worker, user_api):
    workflow = create(user_api, APPROVAL)
    run_id = start(user_api, workflow["id"], {"title": "Post"})["id"]
    wait_for_run(run_id, statuses={"waiting"})
    assert (
        user_api.post(f"/api/v3/runs/{run_id}/steps/publish/approve", {"approved": True}, format="json").status_code
        == 409
    )
    answer = user_api.post(
        f"/api/v3/runs/{run_id}/steps/ask/approve", {"approved": False, "comment": "no"}, format="json"
    )
    assert answer.status_code == 200
    run = wait_for_run(run_id)
    steps = steps_of(run_id)
    assert run.status == "failed"
    assert steps["ask"].status == "failed" and "Rejected by" in steps["ask"].error["message"]
    assert steps["publish"].status == "cancelled"


def test_only_named_approvers_and_members_may_decide(engine_worker, user, user_api):
    body = {
        "name": "Named",
        "nodes": [{"key": "ask", "type": "approval", "config": {"approvers": ["boss@example.com"]}}],
    }
    workflow = create(user_api, body)
    run_id = start(user_api, workflow["id"])["id"]
    wait_for_run(run_id, statuses={"waiting"})
    assert (
        user_api.post(f"/api/v3/runs/{run_id}/steps/ask/approve", {"approved": True}, format="json").status_code == 403
    )
    stranger = client_for(MembershipFactory().user)
    assert (
        stranger.post(f"/api/v3/runs/{run_id}/steps/ask/approve", {"approved": True}, format="json").status_code == 404
    )
    boss = MembershipFactory(
        workspace=Membership.objects.get(user=user).workspace, user__email="boss@example.com", role="editor"
    ).user
    assert (
        client_for(boss).post(f"/api/v3/runs/{run_id}/steps/ask/approve", {"approved": True}, format="json").status_code
        == 200
    )
    assert wait_for_run(run_id).status == "succeeded"


def test_a_run_timeout_fails_the_run(engine_worker, user_api):
    body = {
        "name": "Too slow",
        "settings": {"timeout": 1},
        "nodes": [{"key": "wait", "type": "delay", "config": {"seconds": 60}}, {"key": "after", "content": "x"}],
    }
    workflow = create(user_api, body)
    run_id = start(user_api, workflow["id"])["id"]
    wait_for_run(run_id, statuses={"waiting"})
    time.sleep(1.2)
    recovery.recover()  # what the beat task runs every 15 s
    run = wait_for_run(run_id)
    assert run.status == "failed"
    assert run.error["type"] == "timeout"
    assert {step.status for step in steps_of(run_id).values()} == {"cancelled"}


def test_max_concurrency_queues_extra_runs(engine_worker, user_api):
    body = {
        "name": "One at a time",
        "settings": {"max_concurrency": 1},
        "nodes": [{"key": "wait", "type": "delay", "config": {"seconds": 1}}],
    }
    workflow = create(user_api, body)
    first = start(user_api, workflow["id"])["id"]
    wait_for_run(first, statuses={"waiting"})
    second = start(user_api, workflow["id"])["id"]
    wait_for_run(second, statuses={"queued"}, timeout=5)
    assert Run.objects.get(pk=first).status == "waiting"
    assert wait_for_run(first).status == "succeeded"
    second_run = wait_for_run(second)
    assert second_run.status == "succeeded"
    assert second_run.started_at >= Run.objects.get(pk=first).finished_at


def test_email_goes_through_the_email_backend_to_allowed_recipients_only(engine_worker, user, user_api):
    # Besides its members' addresses, a workspace mails only the domains an operator allowed it.
    Workspace.objects.filter(memberships__user=user).update(email_allowed_domains=["example.com"])
    body = {
        "name": "Mail",
        "nodes": [
            {
                "key": "mail",
                "type": "email",
                "config": {
                    "to": ["{{ input.to }}"],
                    "subject": "Hi {{ input.name }}",
                    "body": "Body for {{ input.name }}",
                },
            }
        ],
    }
    workflow = create(user_api, body)
    run = wait_for_run(start(user_api, workflow["id"], {"to": "ada@example.com", "name": "Ada"})["id"])
    assert run.status == "succeeded", run.error
    assert steps_of(run.pk)["mail"].output == {"sent": 1, "to": ["ada@example.com"]}
    sent = "\n".join(path.read_text() for path in engine_worker.mail_dir.iterdir())
    assert "Subject: Hi Ada" in sent and "To: ada@example.com" in sent and "Body for Ada" in sent

    refused = wait_for_run(start(user_api, workflow["id"], {"to": "eve@elsewhere.example", "name": "Eve"})["id"])
    assert refused.status == "failed"
    assert "eve@elsewhere.example" in str(steps_of(refused.pk)["mail"].error)
    assert steps_of(refused.pk)["mail"].attempt == 1  # a permanent refusal: not retried


def test_a_webhook_with_a_secret_is_signed_and_the_secret_stays_out_of_the_run(
    engine_worker, user, user_api, httpserver
):
    httpserver.expect_request("/hook", method="POST").respond_with_json({"received": True})
    workspace = Membership.objects.get(user=user).workspace
    credential_save(workspace_id=workspace.id, name="hook-secret", kind="hmac_secret", value={"secret": "s3cr3t-value"})
    body = {
        "name": "Signed",
        "nodes": [
            {
                "key": "hook",
                "type": "webhook",
                "config": {"url": httpserver.url_for("/hook"), "body": {"n": "{{ input.n }}"}, "secret": "hook-secret"},
            }
        ],
    }
    workflow = create(user_api, body)
    run = wait_for_run(start(user_api, workflow["id"], {"n": 7})["id"])
    assert run.status == "succeeded", run.error
    [(request, _)] = [(r, s) for r, s in httpserver.log if r.path == "/hook"]
    expected = hmac.new(b"s3cr3t-value", request.get_data(), hashlib.sha256).hexdigest()
    assert request.headers["X-Signature-256"] == f"sha256={expected}"
    assert request.get_json() == {"n": 7}
    everything = str(steps_of(run.pk)["hook"].__dict__) + str(list(run.events.values_list("data", flat=True)))
    assert "s3cr3t-value" not in everything


def test_runs_api_lists_filters_and_pages_events(engine_worker, user_api):
    workflow = create(
        user_api, {"name": "Quick", "nodes": [{"key": "a", "content": "x"}, {"key": "b", "content": "y"}]}
    )
    run_id = start(user_api, workflow["id"])["id"]
    wait_for_run(run_id)
    listing = user_api.get("/api/v3/runs", {"workflow": workflow["id"], "status": "succeeded"}).json()
    assert [item["id"] for item in listing["results"]] == [run_id]
    assert user_api.get("/api/v3/runs", {"status": "failed"}).json()["count"] == 0
    detail = user_api.get(f"/api/v3/runs/{run_id}").json()
    assert [(step["key"], step["status"]) for step in detail["steps"]] == [("a", "succeeded"), ("b", "succeeded")]
    assert detail["version"] == 1 and detail["duration_seconds"] is not None
    steps = user_api.get(f"/api/v3/runs/{run_id}/steps").json()
    assert steps[1]["input"]["content"] == "y" and steps[1]["attempt"] == 1
    events = user_api.get(f"/api/v3/runs/{run_id}/events").json()
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert set(events[0]) == {"type", "id", "seq", "ts", "workspace", "workflow", "run", "step", "data"}
    later = user_api.get(f"/api/v3/runs/{run_id}/events", {"after_seq": 3}).json()
    assert [event["seq"] for event in later] == list(range(4, len(events) + 1))
    assert user_api.get(f"/api/v3/runs/{run_id}/events", {"after_seq": "x"}).status_code == 400
    stranger = client_for(MembershipFactory().user)
    for url in (f"/api/v3/runs/{run_id}", f"/api/v3/runs/{run_id}/steps", f"/api/v3/runs/{run_id}/events"):
        assert stranger.get(url).status_code == 404
    assert stranger.post(f"/api/v3/runs/{run_id}/retry").status_code == 404
    assert user_api.post(f"/api/v3/runs/{run_id}/retry").status_code == 409
    assert (
        stranger.post("/api/v3/trigger", {"workflow_id": workflow["id"], "payload": {}}, format="json").status_code
        == 404
    )
