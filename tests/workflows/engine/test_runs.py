"""Runs end to end: the API starts them, a real Celery worker executes them, local servers receive them."""

import json
import time

import pytest
from django.conf import settings
from werkzeug import Response

from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.hanging_server import HangingServer
from tests.workflows.helpers import DEMO_BODY, create
from workflows.models import Run, StepRun

pytestmark = pytest.mark.django_db(transaction=True)


def start(api, workflow_id, run_input=None, **headers):
    answer = api.post(f"/api/v3/workflows/{workflow_id}/runs", {"input": run_input or {}}, format="json", **headers)
    assert answer.status_code in (200, 202), answer.content
    return answer.json()


def steps_of(run_id) -> dict[str, StepRun]:
    return {step.node_key: step for step in StepRun.objects.filter(run_id=run_id)}


def test_the_seed_chain_waits_then_posts_to_the_webhook(engine_worker, user_api, httpserver):
    httpserver.expect_request("/post", method="POST").respond_with_json({"ok": True})
    body = json.loads(json.dumps(DEMO_BODY))
    body["steps"][1]["config"]["url"] = httpserver.url_for("/post")
    workflow = create(user_api, body)

    started = time.monotonic()
    answer = user_api.post("/api/v3/trigger", {"workflow_id": workflow["id"], "payload": {}}, format="json")
    assert answer.status_code == 202, answer.content
    assert answer.json()["run_id"] == answer.json()["id"]
    run = wait_for_run(answer.json()["run_id"], timeout=30)
    assert run.status == "succeeded", run.error
    assert time.monotonic() - started >= 2
    [(request, _)] = httpserver.log
    assert request.get_json() == {"message": "Hello from workflow!"}
    assert request.headers["Idempotency-Key"] == f"{run.pk}:notify"
    steps = steps_of(run.pk)
    assert steps["delay"].output["waited"] >= 2
    assert steps["notify"].output == {"status": 200, "body": {"ok": True}}
    assert run.output == {"notify": {"status": 200, "body": {"ok": True}}}


def test_a_document_chain_feeds_each_prompt_the_previous_content(engine_worker, user_api):
    body = {
        "name": "Blog chain",
        "input_schema": {"type": "object", "required": ["topic"], "properties": {"topic": {"type": "string"}}},
        "nodes": [
            {"key": "outline", "title": "Outline", "prompt": "Outline about {{ input.topic }}"},
            {"key": "chapter", "title": "Chapter", "prompt": "Chapter from [{{ nodes.outline.content }}]"},
            {"key": "summary", "title": "Summary", "prompt": "Summary of [{{ nodes.chapter.content|upper }}]"},
        ],
    }
    workflow = create(user_api, body)
    run = wait_for_run(start(user_api, workflow["id"], {"topic": "bees"})["id"])
    assert run.status == "succeeded", run.error
    steps = steps_of(run.pk)
    assert steps["outline"].output["content"] == "Outline about bees"
    assert steps["chapter"].output["content"] == "Chapter from [Outline about bees]"
    assert steps["summary"].output["content"] == "Summary of [CHAPTER FROM [OUTLINE ABOUT BEES]]"
    assert steps["summary"].output["title"] == "Summary"
    assert steps["chapter"].input["prompt"] == "Chapter from [Outline about bees]"
    events = [event["type"] for event in user_api.get(f"/api/v3/runs/{run.pk}/events").json()]
    assert events[0] == "run.created" and events[-1] == "run.succeeded"
    assert events.count("step.succeeded") == 3


def test_input_failing_the_schema_is_400_and_starts_nothing(user_api):
    schema = {"type": "object", "required": ["topic"], "properties": {"topic": {"type": "string"}}}
    workflow = create(user_api, {"name": "x", "input_schema": schema})
    url = f"/api/v3/workflows/{workflow['id']}/runs"
    missing = user_api.post(url, {"input": {}}, format="json")
    assert missing.status_code == 400
    assert missing.json()["errors"] == {"input": ["'topic' is a required property"]}
    mistyped = user_api.post(url, {"input": {"topic": 3}}, format="json")
    assert mistyped.status_code == 400
    assert mistyped.json()["errors"] == {"input.topic": ["3 is not of type 'string'"]}
    assert not Run.objects.exists()


def test_condition_runs_only_the_matching_branch(engine_worker, user_api):
    body = {
        "name": "Branch",
        "nodes": [
            {"key": "check", "type": "condition", "config": {"expression": "input.score > 5"}},
            {"key": "high", "type": "text", "content": "high", "depends_on": [{"node": "check", "when": "true"}]},
            {"key": "low", "type": "text", "content": "low", "depends_on": [{"node": "check", "when": "false"}]},
            {"key": "after_low", "type": "text", "content": "x", "depends_on": ["low"]},
        ],
    }
    workflow = create(user_api, body)
    for score, taken, skipped in [(9, "high", "low"), (1, "low", "high")]:
        run = wait_for_run(start(user_api, workflow["id"], {"score": score})["id"])
        steps = steps_of(run.pk)
        assert run.status == "succeeded", run.error
        assert steps["check"].output == {"result": score > 5}
        assert steps[taken].status == "succeeded"
        assert steps[skipped].status == "skipped"
    assert steps_of(run.pk)["after_low"].status == "succeeded"


FAN = {
    "name": "Fan",
    "settings": {"on_failure": "continue"},
    "nodes": [
        {"key": "root", "type": "text", "content": "r"},
        {"key": "ok", "type": "text", "content": "fine", "depends_on": ["root"]},
        {
            "key": "broken",
            "type": "transform",
            "config": {"values": {"x": "{{ nodes.root.output.missing.deeper }}"}},
            "depends_on": ["root"],
        },
        {"key": "all_success", "type": "text", "content": "a", "depends_on": ["ok", "broken"]},
        {"key": "all_done", "type": "text", "content": "b", "depends_on": ["ok", "broken"], "trigger_rule": "all_done"},
        {
            "key": "one_success",
            "type": "text",
            "content": "{{ nodes.ok.content }}",
            "depends_on": ["ok", "broken"],
            "trigger_rule": "one_success",
        },
    ],
}


def test_fan_out_and_fan_in_follow_each_trigger_rule(engine_worker, user_api):
    workflow = create(user_api, FAN)
    run = wait_for_run(start(user_api, workflow["id"])["id"])
    steps = steps_of(run.pk)
    assert steps["broken"].status == "failed"
    assert "undefined" in steps["broken"].error["message"] or "attribute" in steps["broken"].error["message"]
    assert steps["all_success"].status == "skipped"
    assert steps["all_done"].status == "succeeded"
    assert steps["one_success"].status == "succeeded" and steps["one_success"].output["content"] == "fine"
    assert run.status == "failed"
    assert run.error["steps"] == ["broken"]


def test_fail_fast_cancels_what_has_not_run(engine_worker, user_api):
    workflow = create(user_api, {**FAN, "settings": {"on_failure": "fail_fast"}})
    run = wait_for_run(start(user_api, workflow["id"])["id"])
    steps = steps_of(run.pk)
    assert run.status == "failed"
    assert steps["broken"].status == "failed"
    assert {steps[key].status for key in ("all_success", "all_done", "one_success")} <= {"cancelled", "succeeded"}
    assert "broken" in run.error["message"]


def test_retries_back_off_until_the_server_recovers(engine_worker, user_api, httpserver):
    answers = iter(
        [
            Response("no", status=500),
            Response("no", status=500),
            Response('{"ok": 1}', status=200, content_type="application/json"),
        ]
    )
    times = []

    def handler(request):
        times.append(time.monotonic())
        return next(answers)

    httpserver.expect_request("/flaky").respond_with_handler(handler)
    body = {
        "name": "Flaky",
        "nodes": [
            {
                "key": "call",
                "type": "http_request",
                "config": {"url": httpserver.url_for("/flaky")},
                "retry": {"max_attempts": 3, "backoff_seconds": 0.5, "backoff_factor": 2},
            }
        ],
    }
    workflow = create(user_api, body)
    run = wait_for_run(start(user_api, workflow["id"])["id"])
    step = steps_of(run.pk)["call"]
    assert run.status == "succeeded", run.error
    assert step.attempt == 3
    assert step.output["body"] == {"ok": 1}
    assert times[1] - times[0] >= 0.45 and times[2] - times[1] >= 0.95
    types = [event["type"] for event in user_api.get(f"/api/v3/runs/{run.pk}/events").json()]
    assert types.count("step.retrying") == 2


def test_a_429_retry_after_holds_the_next_attempt_back(engine_worker, user_api, httpserver):
    """The worker's second attempt comes no sooner than the server asked, not after the 0.1 s backoff."""
    answers = iter(
        [
            Response("slow down", status=429, headers={"Retry-After": "2"}),
            Response('{"ok": 1}', status=200, content_type="application/json"),
        ]
    )
    times = []

    def handler(request):
        times.append(time.monotonic())
        return next(answers)

    httpserver.expect_request("/limited").respond_with_handler(handler)
    body = {
        "name": "Limited",
        "nodes": [
            {
                "key": "call",
                "type": "http_request",
                "config": {"url": httpserver.url_for("/limited")},
                "retry": {"max_attempts": 2, "backoff_seconds": 0.1, "backoff_factor": 1},
            }
        ],
    }
    workflow = create(user_api, body)
    run = wait_for_run(start(user_api, workflow["id"])["id"])
    assert run.status == "succeeded", run.error
    assert steps_of(run.pk)["call"].attempt == 2
    assert times[1] - times[0] >= 1.95
    events = user_api.get(f"/api/v3/runs/{run.pk}/events").json()
    [retrying] = [event["data"] for event in events if event["type"] == "step.retrying"]
    assert (retrying["retry_in_seconds"], retrying["retry_after"], retrying["capped"]) == (2, 2, False)


def test_a_step_timeout_fails_the_step(engine_worker, user_api, httpserver):
    httpserver.expect_request("/slow").respond_with_handler(lambda request: time.sleep(3) or Response("late"))
    body = {
        "name": "Slow",
        "nodes": [
            {"key": "call", "type": "http_request", "config": {"url": httpserver.url_for("/slow")}, "timeout": 1}
        ],
    }
    workflow = create(user_api, body)
    run = wait_for_run(start(user_api, workflow["id"])["id"], timeout=20)
    step = steps_of(run.pk)["call"]
    assert run.status == "failed"
    assert step.status == "failed"
    assert step.error["type"] in ("EgressTimeout", "TransientError")


def test_cancel_during_a_delay_cancels_the_rest(engine_worker, user_api):
    body = {
        "name": "Wait",
        "nodes": [{"key": "wait", "type": "delay", "config": {"seconds": 30}}, {"key": "after", "content": "x"}],
    }
    workflow = create(user_api, body)
    run_id = start(user_api, workflow["id"])["id"]
    wait_for_run(run_id, statuses={"waiting"})
    assert user_api.post(f"/api/v3/runs/{run_id}/cancel").status_code == 202
    run = wait_for_run(run_id)
    assert run.status == "cancelled"
    assert {key: step.status for key, step in steps_of(run_id).items()} == {"wait": "cancelled", "after": "cancelled"}
    again = user_api.post(f"/api/v3/runs/{run_id}/cancel")
    assert again.status_code == 409


def test_cancel_cuts_off_a_running_steps_outbound_call(engine_worker, user_api):
    """The worker does not sit out the call's 60 s: within a heartbeat it closes the connection."""
    server = HangingServer()
    body = {
        "name": "Hang",
        "nodes": [{"key": "call", "type": "http_request", "config": {"url": server.url, "timeout": 60}}],
    }
    workflow = create(user_api, body)
    run_id = start(user_api, workflow["id"])["id"]
    assert server.received.wait(20)
    assert user_api.post(f"/api/v3/runs/{run_id}/cancel").status_code == 202
    cancelled_at = time.monotonic()
    assert server.hung_up.wait(settings.DWC_HEARTBEAT_SECONDS + 10), "the worker kept the connection open"
    assert server.hung_up_at - cancelled_at < settings.DWC_HEARTBEAT_SECONDS + 5
    assert wait_for_run(run_id).status == "cancelled"
    assert steps_of(run_id)["call"].status == "cancelled"
    deadline = time.monotonic() + 10
    while "stopping a step that is no longer running here" not in engine_worker.output():
        assert time.monotonic() < deadline, engine_worker.output()[-2000:]
        time.sleep(0.1)


def test_retry_reruns_only_the_failed_step(engine_worker, user_api, httpserver):
    httpserver.expect_ordered_request("/first").respond_with_json({"n": 1})
    httpserver.expect_ordered_request("/second").respond_with_data("down", status=503)
    httpserver.expect_ordered_request("/second").respond_with_json({"n": 2})
    body = {
        "name": "Two calls",
        "nodes": [
            {"key": "first", "type": "http_request", "config": {"url": httpserver.url_for("/first")}},
            {"key": "second", "type": "http_request", "config": {"url": httpserver.url_for("/second")}},
        ],
    }
    workflow = create(user_api, body)
    run_id = start(user_api, workflow["id"])["id"]
    assert wait_for_run(run_id).status == "failed"
    assert user_api.post(f"/api/v3/runs/{run_id}/retry").status_code == 202
    run = wait_for_run(run_id)
    assert run.status == "succeeded", run.error
    # (The server is shared: a slow request of an earlier test may land in its log too.)
    calls = [request.path for request, _ in httpserver.log if request.path in ("/first", "/second")]
    assert calls == ["/first", "/second", "/second"]
    steps = steps_of(run_id)
    assert (steps["first"].attempt, steps["second"].attempt) == (1, 2)


def test_an_idempotency_key_returns_the_first_run(user_api):
    workflow = create(user_api, {"name": "Once"})
    first = user_api.post(
        f"/api/v3/workflows/{workflow['id']}/runs", {"input": {}}, format="json", HTTP_IDEMPOTENCY_KEY="abc"
    )
    second = user_api.post(
        f"/api/v3/workflows/{workflow['id']}/runs", {"input": {}}, format="json", HTTP_IDEMPOTENCY_KEY="abc"
    )
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]
    assert Run.objects.count() == 1


def test_paused_workflows_do_not_run(user_api):
    workflow = create(user_api, {"name": "Paused", "status": "paused"})
    answer = user_api.post(f"/api/v3/workflows/{workflow['id']}/runs", {"input": {}}, format="json")
    assert answer.status_code == 409
    assert not Run.objects.exists()


def test_a_batch_starts_every_run_or_none(engine_worker, user_api):
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    body = {
        "name": "Batch",
        "input_schema": schema,
        "nodes": [{"key": "a", "type": "transform", "config": {"values": {"m": "{{ input.n + 1 }}"}}}],
    }
    workflow = create(user_api, body)
    url = f"/api/v3/workflows/{workflow['id']}/runs/batch"
    rejected = user_api.post(url, {"inputs": [{"n": 1}, {"n": "two"}]}, format="json")
    assert rejected.status_code == 400
    assert rejected.json()["errors"] == {"inputs.1.n": ["'two' is not of type 'integer'"]}
    assert not Run.objects.exists()
    started = user_api.post(url, {"inputs": [{"n": n} for n in range(3)]}, format="json")
    assert started.status_code == 202
    runs = [wait_for_run(item["id"]) for item in started.json()]
    assert [run.output for run in runs] == [{"a": {"m": n + 1}} for n in range(3)]
