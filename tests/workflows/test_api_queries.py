"""The API's reads make a fixed number of queries, whatever the page size, node count or step count:
a list of 50 costs what a list of 5 costs, a workflow of 12 nodes what one of 2 costs."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import PASSWORD
from workflows.models import Run, StepRun
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db


def queries(api, path: str) -> int:
    api.get(path)  # warm: the throttle's first count, the login session's last use
    with CaptureQueriesContext(connection) as captured:
        answer = api.get(path)
    assert answer.status_code == 200, answer.content
    return len(captured.captured_queries)


def a_workflow(user, nodes: int, tags: int = 2):
    data = {
        "name": f"W{nodes}",
        "tags": [f"tag-{index}" for index in range(tags)],
        "nodes": [{"key": f"n{index}", "type": "transform", "config": {"values": {}}} for index in range(nodes)],
    }
    return workflow_create(actor=user, workspace=user.memberships.get().workspace, data=data)


def test_the_workflow_list_costs_the_same_for_5_and_50_workflows(user, user_api):
    for _ in range(5):
        a_workflow(user, nodes=3)
    # Full pages both: a page with room to spare is known to be the last, and leaves out the COUNT.
    few = queries(user_api, "/api/v3/workflows?page_size=5")
    for _ in range(45):
        a_workflow(user, nodes=3)
    answer = user_api.get("/api/v3/workflows?page_size=50").json()
    assert answer["count"] == 50 and len(answer["results"]) == 50
    assert {row["node_count"] for row in answer["results"]} == {3}
    assert answer["results"][0]["tags"] == ["tag-0", "tag-1"]
    assert queries(user_api, "/api/v3/workflows?page_size=50") == few


def test_a_workflow_detail_costs_the_same_for_2_and_12_nodes(user, user_api):
    small, big = a_workflow(user, nodes=2), a_workflow(user, nodes=12, tags=5)
    assert queries(user_api, f"/api/v3/workflows/{small.pk}") == queries(user_api, f"/api/v3/workflows/{big.pk}")
    detail = user_api.get(f"/api/v3/workflows/{big.pk}").json()
    assert detail["node_count"] == 12 and len(detail["nodes"]) == 12 and len(detail["tags"]) == 5


def test_a_run_detail_reads_its_steps_once(user, user_api):
    workflow = a_workflow(user, nodes=10)
    version = workflow.versions.get()
    run = Run.objects.create(workflow=workflow, workspace=workflow.workspace, version=version, trigger="api")
    StepRun.objects.bulk_create(
        StepRun(run=run, node_key=f"n{index}", node_type="transform", usage={"tokens_in": 1}) for index in range(10)
    )
    path = f"/api/v3/runs/{run.pk}"
    with CaptureQueriesContext(connection) as captured:
        answer = user_api.get(path)
    assert answer.status_code == 200
    assert len(answer.json()["steps"]) == 10
    # Loaded once (the digest the display is cached under reads them in SQL, loading nothing).
    step_loads = [query for query in captured.captured_queries if query["sql"].startswith('SELECT "workflows_steprun"')]
    assert len(step_loads) == 1
    with CaptureQueriesContext(connection) as captured:
        assert user_api.get(path).json() == answer.json()
    assert not [query for query in captured.captured_queries if query["sql"].startswith('SELECT "workflows_steprun"')]


def test_a_login_sessions_token_is_checked_and_its_user_loaded_in_one_query(user, api):
    tokens = api.post("/api/v3/auth/token", {"email": user.email, "password": PASSWORD}, format="json").json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    api.get("/api/v3/auth/me")  # warm: the session's last use is written at most once a minute
    with CaptureQueriesContext(connection) as captured:
        assert api.get("/api/v3/auth/me").json()["email"] == user.email
    user_reads = [query["sql"] for query in captured.captured_queries if '"accounts_user"."password"' in query["sql"]]
    assert len(user_reads) == 1, user_reads
    assert 'FROM "accounts_loginsession" INNER JOIN "accounts_user"' in user_reads[0]
