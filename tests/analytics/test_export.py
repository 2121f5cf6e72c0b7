"""The analytics export: the chosen metrics per bucket (or the per-node table) streamed as CSV or JSON,
confined to the caller's workspaces, with 400s naming a bad parameter."""

import csv
import io
import json
import uuid
from datetime import timedelta

import pytest
from django.http import StreamingHttpResponse
from django.utils import timezone

from accounts.models import Membership
from analytics import selectors
from analytics.services.recording import bucket_start
from tests.analytics.facts import record, run_fact
from tests.conftest import client_for
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

EXPORT = "/api/v3/analytics/export"


@pytest.fixture
def team(db):
    workspace = WorkspaceFactory()
    member = UserFactory()
    Membership.objects.create(workspace=workspace, user=member, role="viewer")
    return {"workspace": workspace, "member": member, "stranger": UserFactory()}


@pytest.fixture
def hour():
    """The last whole hour up to the next minute: exactly 60 minute buckets."""
    end = bucket_start(timezone.now(), "minute") + timedelta(minutes=1)
    start = end - timedelta(hours=1)
    return {"from": start.isoformat(), "to": end.isoformat(), "start": start, "end": end}


@pytest.fixture
def seeded(team):
    workflow = uuid.uuid4()
    record(
        [
            run_fact(team["workspace"], workflow, minutes_ago=5, tokens_in=10),
            run_fact(team["workspace"], workflow, minutes_ago=5, status="failed", tokens_in=5),
            run_fact(team["workspace"], workflow, minutes_ago=30),
            run_fact(WorkspaceFactory(), workflow, minutes_ago=5),  # someone else's
        ]
    )
    return workflow


def content(answer) -> str:
    assert isinstance(answer, StreamingHttpResponse), type(answer)
    return b"".join(answer.streaming_content).decode()


def test_csv_has_a_row_per_bucket_with_each_metric(team, hour, seeded):
    params = {"format": "csv", "metric": "runs,failed,success_rate,tokens_in", "from": hour["from"], "to": hour["to"]}
    answer = client_for(team["member"]).get(EXPORT, params)

    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/csv")
    stamp = f"{hour['start']:%Y%m%dT%H%MZ}-{hour['end']:%Y%m%dT%H%MZ}"
    assert answer["Content-Disposition"] == f'attachment; filename="analytics-{stamp}.csv"'
    rows = list(csv.DictReader(io.StringIO(content(answer))))
    assert list(rows[0]) == ["t", "runs", "failed", "success_rate", "tokens_in"]
    assert len(rows) == 60
    assert sum(int(row["runs"]) for row in rows) == 3  # the other workspace's run is left out
    busy = [row for row in rows if row["runs"] == "2"]
    assert len(busy) == 1
    assert (busy[0]["failed"], float(busy[0]["success_rate"]), busy[0]["tokens_in"]) == ("1", 0.5, "15")
    assert {row["success_rate"] for row in rows if row["runs"] == "0"} == {""}  # no runs: no rate


def test_json_is_an_array_of_the_same_rows(team, hour, seeded):
    params = {"format": "json", "metric": "runs,duration_p50", "from": hour["from"], "to": hour["to"]}
    answer = client_for(team["member"]).get(EXPORT, params)

    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/json"
    assert answer["Content-Disposition"].endswith('.json"')
    rows = json.loads(content(answer))
    assert len(rows) == 60
    assert set(rows[0]) == {"t", "runs", "duration_p50"}
    assert [row["t"] for row in rows][:2] == [
        hour["start"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        (hour["start"] + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]
    assert sum(row["runs"] for row in rows) == 3
    assert max(row["duration_p50"] or 0 for row in rows) == pytest.approx(1000, rel=0.02)


def test_json_is_the_default_and_runs_the_default_metric(team, seeded):
    rows = json.loads(content(client_for(team["member"]).get(EXPORT, {"range": "1h", "bucket": "hour"})))
    assert set(rows[0]) == {"t", "runs"}
    assert sum(row["runs"] for row in rows) == 3


def test_every_metric_of_the_timeseries_can_be_exported(team, seeded):
    params = {"format": "csv", "metric": ",".join(selectors.METRICS), "range": "24h", "bucket": "hour"}
    answer = client_for(team["member"]).get(EXPORT, params)
    assert answer.status_code == 200
    header = next(csv.reader(io.StringIO(content(answer))))
    assert header == ["t", *selectors.METRICS]


def test_the_export_is_confined_to_the_callers_workspaces(team, seeded):
    for params in ({}, {"workspace": str(team["workspace"].pk)}, {"workflow": str(seeded)}):
        answer = client_for(team["stranger"]).get(EXPORT, {"range": "1h", "bucket": "hour", **params})
        assert answer.status_code == 200
        assert sum(row["runs"] for row in json.loads(content(answer))) == 0


def test_nodes_can_be_exported(team):
    workflow = uuid.uuid4()
    step = {"key": "=fetch", "type": "http_request", "status": "succeeded", "attempt": 2, "duration_ms": 300}
    record([run_fact(team["workspace"], workflow, steps=[step])])

    csv_answer = client_for(team["member"]).get(EXPORT, {"what": "nodes", "format": "csv", "range": "1h"})
    json_answer = client_for(team["member"]).get(EXPORT, {"what": "nodes", "range": "1h"})

    [row] = list(csv.DictReader(io.StringIO(content(csv_answer))))
    assert csv_answer["Content-Disposition"].startswith('attachment; filename="nodes-')
    assert (row["node_key"], row["steps"], row["retries"]) == ("'=fetch", "1", "1")  # a formula defused
    [node] = json.loads(content(json_answer))
    assert (node["node_key"], node["steps"], node["duration_max"]) == ("=fetch", 1, 300)
    stranger = client_for(team["stranger"]).get(EXPORT, {"what": "nodes", "range": "1h"})
    assert json.loads(content(stranger)) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "xlsx"}, "format"),
        ({"format": "csv", "metric": "runs,vibes"}, "metric"),
        ({"metric": "runs,runs"}, "metric"),
        ({"metric": ""}, None),  # empty: the default (runs)
        ({"range": "2w"}, "range"),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ({"range": "30d", "bucket": "minute"}, "bucket"),
        ({"from": "1900-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),  # 6,575 weeks
        ({"what": "everything"}, "what"),
        ({"workspace": "nope"}, "workspace"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(team, params, field):
    answer = client_for(team["member"]).get(EXPORT, params)
    if field is None:
        assert answer.status_code == 200
        return
    assert answer.status_code == 400, answer
    assert answer["Content-Type"] == "application/problem+json"
    assert list(answer.json()["errors"]) == [field]


def test_the_export_needs_a_login(api):
    assert api.get(EXPORT, {"format": "csv"}).status_code == 401
