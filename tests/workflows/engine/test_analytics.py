"""Runs reach analytics with a real Celery worker: the engine's run events go, after commit, to the
task on the notifications queue, which records the analytics events (run started and finished, each
step) and adds them to the rollups the API reads."""

import pytest

from analytics.models import Event, Rollup, Tally
from tests.processes import wait_until
from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.helpers import create

pytestmark = pytest.mark.django_db(transaction=True)


def test_runs_are_counted_and_the_overview_shows_them(engine_worker, user_api):
    workflow = create(
        user_api, {"name": "Counted", "nodes": [{"key": "t", "type": "text", "content": "{{ input.x }}"}]}
    )
    ids = []
    for run_input in ({"x": 1}, {"x": 2}, {}):  # the last one fails: input.x is undefined
        answer = user_api.post(f"/api/v3/workflows/{workflow['id']}/runs", {"input": run_input}, format="json")
        ids.append(answer.json()["id"])
    statuses = [wait_for_run(run_id, timeout=30).status for run_id in ids]
    assert statuses == ["succeeded", "succeeded", "failed"]

    def counted() -> bool:
        finished = Event.objects.filter(type="run.finished", workflow_id=workflow["id"])
        return finished.count() == 3 and not Event.objects.filter(rolled_up=False).exists()

    wait_until(
        counted,
        timeout=20,
        message=lambda: f"the runs to be counted; the worker said:\n{engine_worker.output()[-3000:]}",
    )
    assert Event.objects.filter(type="run.started", workflow_id=workflow["id"]).count() == 3
    finished = Event.objects.filter(type="run.finished", workflow_id=workflow["id"])
    assert [(event.data["retries"], event.data["crashes"]) for event in finished] == [(0, 0)] * 3
    assert Event.objects.filter(type="step.finished", workflow_id=workflow["id"]).count() == 3
    day = Rollup.objects.get(granularity="day", workflow_id=workflow["id"])
    assert (day.succeeded, day.failed) == (2, 1)
    tallies = Tally.objects.filter(granularity="day", workflow_id=workflow["id"])
    assert {(tally.kind, tally.label): tally.count for tally in tallies if tally.kind == "run.trigger"} == {
        ("run.trigger", "api"): 3
    }
    assert sum(tally.count for tally in tallies if tally.kind == "error.type") == 1
    assert sum(tally.value for tally in tallies if tally.kind == "run.busy") > 0

    nodes = user_api.get("/api/v3/analytics/nodes", {"range": "1h", "workflow": workflow["id"]}).json()["nodes"]
    assert [(node["node_key"], node["node_type"], node["succeeded"], node["failed"]) for node in nodes] == [
        ("t", "text", 2, 1)
    ]
    overview = user_api.get("/api/v3/analytics/overview", {"range": "1h", "workflow": workflow["id"]}).json()
    assert (overview["runs"], overview["succeeded"], overview["failed"]) == (3, 2, 1)
    assert overview["duration_p50"] is not None


def test_generated_documents_are_counted_by_model(engine_worker, user_api):
    nodes = [
        {"key": "outline", "type": "document", "prompt": "Outline about {{ input.topic }}"},
        {"key": "draft", "type": "document", "prompt": "Draft from {{ nodes.outline.content }}"},
    ]
    workflow = create(user_api, {"name": "Chained", "nodes": nodes})
    run_id = user_api.post(f"/api/v3/workflows/{workflow['id']}/runs", {"input": {"topic": "tides"}}, format="json")
    assert wait_for_run(run_id.json()["id"], timeout=30).status == "succeeded"

    wait_until(
        lambda: (
            Event.objects.filter(type="run.finished").exists() and not Event.objects.filter(rolled_up=False).exists()
        ),
        timeout=20,
        message=lambda: f"the run to be counted; the worker said:\n{engine_worker.output()[-3000:]}",
    )
    documents = Event.objects.filter(type="document.generated", workflow_id=workflow["id"])
    assert sorted(event.data["node_key"] for event in documents) == ["draft", "outline"]
    models = user_api.get("/api/v3/analytics/breakdown", {"kind": "models", "range": "1h"}).json()["rows"]
    assert [(row["label"].split("/")[0], row["count"]) for row in models] == [("template", 2)]
