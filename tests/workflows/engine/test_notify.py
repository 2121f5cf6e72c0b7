"""Notifications end to end with a real Celery worker: the notify node sends through a channel by name,
and a run that fails reaches the rules (workflows.events.publish → the notifications queue) and the
inboxes of the people they name."""

import pytest
from werkzeug import Response

from accounts.models import Membership
from notifications.models import Channel, Delivery, Notification, Rule, Template
from tests.factories import UserFactory
from tests.processes import wait_until
from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.helpers import create
from workflows.models import StepRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.DWC_OUTBOUND_ALLOWLIST = ["127.0.0.1"]


def workspace_of(user):
    return Membership.objects.get(user=user, workspace__is_personal=True).workspace


def run_of(api, workflow_id) -> dict:
    answer = api.post(f"/api/v3/workflows/{workflow_id}/runs", {"input": {"who": "Ada"}}, format="json")
    assert answer.status_code in (200, 202), answer.content
    return answer.json()


def test_the_notify_node_sends_through_a_channel_by_name_with_a_template(engine_worker, user, user_api, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    workspace = workspace_of(user)
    Channel.objects.create(workspace=workspace, name="ops", kind="webhook", config={"url": httpserver.url_for("/hook")})
    Template.objects.create(
        workspace=workspace,
        name="done",
        subject="{{ workflow.name }} done",
        body="Hello {{ data.input.who }}: {{ data.nodes.greet.content }}",
    )
    workflow = create(
        user_api,
        {
            "name": "Notifier",
            "nodes": [
                {"key": "greet", "type": "text", "content": "Hi {{ input.who }}"},
                {
                    "key": "tell",
                    "type": "notify",
                    "config": {"channel": "ops", "template": "done"},
                    "depends_on": ["greet"],
                },
                {"key": "inline", "type": "notify", "config": {"channel": "ops", "message": "Run {{ run.id }}"}},
            ],
        },
    )

    run = wait_for_run(run_of(user_api, workflow["id"])["id"], timeout=30)

    assert run.status == "succeeded", run.error
    tell = StepRun.objects.get(run=run, node_key="tell").output["delivery"]
    assert (tell["status"], tell["response_code"]) == ("sent", 200)
    delivery = Delivery.objects.get(pk=tell["id"])
    assert (delivery.subject, delivery.body) == ("Notifier done", "Hello Ada: Hi Ada")
    assert delivery.idempotency_key == f"node:{run.pk}:tell"
    bodies = [request.get_json()["data"] for request, _ in httpserver.log]
    assert sorted(body["subject"] for body in bodies) == ["", "Notifier done"]
    assert f"Run {run.pk}" in [body["body"] for body in bodies]


def test_a_notify_node_naming_no_channel_fails_the_run_clearly(engine_worker, user_api):
    workflow = create(
        user_api,
        {"name": "Lost", "nodes": [{"key": "tell", "type": "notify", "config": {"channel": "nope", "message": "m"}}]},
    )

    run = wait_for_run(run_of(user_api, workflow["id"])["id"], timeout=30)

    assert run.status == "failed"
    assert "No notification channel named 'nope'" in run.error["message"]


def test_a_permanent_refusal_fails_the_step_with_the_receivers_answer(engine_worker, user, user_api, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_response(Response("bad payload", status=400))
    Channel.objects.create(
        workspace=workspace_of(user), name="ops", kind="webhook", config={"url": httpserver.url_for("/hook")}
    )
    workflow = create(
        user_api,
        {"name": "Refused", "nodes": [{"key": "tell", "type": "notify", "config": {"channel": "ops", "message": "m"}}]},
    )

    run = wait_for_run(run_of(user_api, workflow["id"])["id"], timeout=30)

    assert run.status == "failed"
    assert "bad payload" in run.error["message"]
    assert Delivery.objects.get().status == "dead"


def test_a_failed_run_reaches_the_rules_and_the_inboxes_they_name(engine_worker, user, user_api):
    workspace = workspace_of(user)
    colleague = UserFactory()
    Membership.objects.create(workspace=workspace, user=colleague, role="editor")
    rule = Rule.objects.create(workspace=workspace, name="failures", events=["run.failed"], roles=["owner", "editor"])
    workflow = create(
        user_api,
        {
            "name": "Breaks",
            "tags": ["nightly"],
            "nodes": [{"key": "oops", "type": "transform", "config": {"values": {"x": "{{ input.missing.key }}"}}}],
        },
    )

    run = wait_for_run(run_of(user_api, workflow["id"])["id"], timeout=30)
    assert run.status == "failed"

    wait_until(
        lambda: Notification.objects.count() == 2,
        timeout=20,
        message=f"both inboxes to be notified; the worker said:\n{engine_worker.output()[-3000:]}",
    )
    notification = Notification.objects.get(user=colleague)
    assert notification.title == "Run of Breaks failed"
    assert notification.link == f"/dashboard/runs/{run.pk}/"
    assert notification.level == "error"
    match = rule.matches.get()
    assert (match.event_type, match.subject, match.outcome) == ("run.failed", workflow["id"], "notified")
    assert match.event["workflow"]["tags"] == ["nightly"]
