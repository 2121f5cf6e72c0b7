"""Saved custom reports: created, changed and deleted by editors and above (audited), listed and run by
every member of their workspace, invisible to everyone else."""

import csv
import io
import uuid
from datetime import timedelta

import pytest
from django.http import StreamingHttpResponse
from django.utils import timezone

from accounts.models import Membership
from analytics.models import Report
from analytics.services.recording import bucket_start
from audit.models import AuditEvent
from tests.analytics.facts import record, run_fact
from tests.conftest import client_for
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

REPORTS = "/api/v3/analytics/reports"


@pytest.fixture
def team(db):
    workspace = WorkspaceFactory()
    editor, viewer = UserFactory(), UserFactory()
    Membership.objects.create(workspace=workspace, user=editor, role="editor")
    Membership.objects.create(workspace=workspace, user=viewer, role="viewer")
    return {"workspace": workspace, "editor": editor, "viewer": viewer, "stranger": UserFactory()}


def create(team, **body):
    data = {"workspace": str(team["workspace"].pk), "name": "Failures", "metrics": ["runs", "failed"], **body}
    return client_for(team["editor"]).post(REPORTS, data, format="json")


def test_an_editor_creates_a_report_and_every_member_sees_it(team):
    answer = create(team, range="24h", bucket="hour", filters={"workflow": str(uuid.uuid4())})

    assert answer.status_code == 201, answer.content
    report = answer.json()
    assert (report["name"], report["metrics"], report["range"], report["bucket"]) == (
        "Failures",
        ["runs", "failed"],
        "24h",
        "hour",
    )
    assert report["created_by"] == team["editor"].email
    listed = client_for(team["viewer"]).get(REPORTS).json()["results"]
    assert [item["id"] for item in listed] == [report["id"]]
    assert client_for(team["viewer"]).get(f"{REPORTS}/{report['id']}").json()["name"] == "Failures"
    event = AuditEvent.objects.get(action="analytics_report.created")
    assert (event.target_id, event.changes["name"]) == (report["id"], [None, "Failures"])


def test_a_report_without_a_range_lasts_seven_days_and_picks_its_bucket(team):
    report = create(team).json()
    assert (report["range"], report["start"], report["bucket"]) == ("7d", None, None)


def test_a_viewer_may_not_create_change_or_delete_a_report(team):
    report = create(team).json()
    viewer = client_for(team["viewer"])

    created = viewer.post(
        REPORTS, {"workspace": str(team["workspace"].pk), "name": "Mine", "metrics": ["runs"]}, format="json"
    )
    changed = viewer.patch(f"{REPORTS}/{report['id']}", {"name": "Renamed"}, format="json")
    deleted = viewer.delete(f"{REPORTS}/{report['id']}")

    assert (created.status_code, changed.status_code, deleted.status_code) == (403, 403, 403)
    bad = viewer.patch(f"{REPORTS}/{report['id']}", {"metrics": ["vibes"]}, format="json")
    assert bad.status_code == 403  # the role before the body
    assert Report.objects.get().name == "Failures"


def test_anothers_report_does_not_exist_for_a_stranger(team):
    report = create(team).json()
    stranger = client_for(team["stranger"])
    url = f"{REPORTS}/{report['id']}"

    assert stranger.get(REPORTS).json()["results"] == []
    for answer in (
        stranger.get(url),
        stranger.get(f"{url}/run"),
        stranger.patch(url, {"name": "x"}, format="json"),
        stranger.delete(url),
    ):
        assert answer.status_code == 404
        assert answer.json() == stranger.get(f"{REPORTS}/{uuid.uuid4()}").json()
    created = stranger.post(
        REPORTS, {"workspace": str(team["workspace"].pk), "name": "x", "metrics": ["runs"]}, format="json"
    )
    assert list(created.json()["errors"]) == ["workspace"]


def test_an_editor_changes_and_deletes_a_report(team):
    report = create(team, range="24h").json()
    url = f"{REPORTS}/{report['id']}"
    editor = client_for(team["editor"])
    start, end = "2026-01-01T00:00:00Z", "2026-01-08T00:00:00Z"

    fixed = editor.patch(url, {"start": start, "end": end, "metrics": ["cost"]}, format="json")

    assert fixed.status_code == 200, fixed.content
    assert (fixed.json()["range"], fixed.json()["start"], fixed.json()["metrics"]) == ("", start, ["cost"])
    relative = editor.patch(url, {"range": "30d"}, format="json").json()
    assert (relative["range"], relative["start"], relative["end"]) == ("30d", None, None)
    changes = AuditEvent.objects.filter(action="analytics_report.updated").order_by("id").first().changes
    assert changes["metrics"] == [["runs", "failed"], ["cost"]]
    assert editor.delete(url).status_code == 204
    assert not Report.objects.exists()
    assert AuditEvent.objects.filter(action="analytics_report.deleted").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metrics": []}, "metrics"),
        ({"metrics": ["runs", "vibes"]}, "metrics.1"),
        ({"metrics": "runs"}, "metrics"),
        ({"range": "2w"}, "range"),
        ({"bucket": "second"}, "bucket"),
        ({"range": "30d", "bucket": "minute"}, "bucket"),  # minutes are kept for a day
        ({"range": "7d", "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}, "range"),
        ({"start": "2026-01-01T00:00:00Z"}, "end"),
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
        ({"filters": {"workflow": "nope"}}, "filters.workflow"),
        ({"filters": {"group_by": "node"}}, "filters"),
        ({"name": "   "}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_report_is_a_400_naming_the_field(team, body, field):
    answer = create(team, **body)
    assert answer.status_code == 400, answer.content
    assert list(answer.json()["errors"]) == [field]
    assert not Report.objects.exists()


def test_a_name_is_unique_in_its_workspace(team):
    assert create(team).status_code == 201
    again = create(team)
    assert again.status_code == 400
    assert list(again.json()["errors"]) == ["name"]
    other = create(team, name="Other").json()
    renamed = client_for(team["editor"]).patch(f"{REPORTS}/{other['id']}", {"name": "Failures"}, format="json")
    assert list(renamed.json()["errors"]) == ["name"]
    elsewhere = WorkspaceFactory()
    Membership.objects.create(workspace=elsewhere, user=team["editor"], role="editor")
    body = {"workspace": str(elsewhere.pk), "name": "Failures", "metrics": ["runs"]}
    assert client_for(team["editor"]).post(REPORTS, body, format="json").status_code == 201


@pytest.fixture
def seeded(team):
    workflow, other = uuid.uuid4(), uuid.uuid4()
    record(
        [
            run_fact(team["workspace"], workflow, minutes_ago=5, cost=0.25),
            run_fact(team["workspace"], workflow, minutes_ago=5, status="failed", cost=0.5),
            run_fact(team["workspace"], workflow, minutes_ago=90),
            run_fact(team["workspace"], other, minutes_ago=5),  # another workflow of the workspace
            run_fact(WorkspaceFactory(), workflow, minutes_ago=5),  # someone else's
        ]
    )
    return workflow


def test_running_a_report_gives_its_summary_and_each_metrics_points(team, seeded):
    report = create(team, range="24h", bucket="hour", metrics=["runs", "cost"], filters={"workflow": str(seeded)})

    answer = client_for(team["viewer"]).get(f"{REPORTS}/{report.json()['id']}/run")

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["name"], body["bucket"]) == ("Failures", "hour")
    assert (body["summary"]["runs"], body["summary"]["failed"], body["summary"]["cost"]) == (3, 1, 0.75)
    runs, cost = body["series"]
    assert (runs["metric"], cost["metric"]) == ("runs", "cost")
    assert len(runs["points"]) in (24, 25)  # every hour, the partial first one included
    assert sum(point["value"] for point in runs["points"]) == 3
    assert sum(point["value"] for point in cost["points"]) == pytest.approx(0.75)


def test_a_report_runs_as_csv_like_the_export(team, seeded):
    end = bucket_start(timezone.now(), "minute") + timedelta(minutes=1)
    start = end - timedelta(hours=1)
    report = create(team, start=start.isoformat(), end=end.isoformat(), metrics=["runs", "failed"]).json()

    answer = client_for(team["viewer"]).get(f"{REPORTS}/{report['id']}/run", {"format": "csv"})

    assert answer.status_code == 200
    assert isinstance(answer, StreamingHttpResponse)
    assert answer["Content-Disposition"].startswith('attachment; filename="analytics-')
    rows = list(csv.DictReader(io.StringIO(b"".join(answer.streaming_content).decode())))
    assert len(rows) == 60
    assert list(rows[0]) == ["t", "runs", "failed"]
    # The workspace's runs of the last hour (both workflows), not the other workspace's.
    assert (sum(int(row["runs"]) for row in rows), sum(int(row["failed"]) for row in rows)) == (3, 1)


def test_running_a_report_refuses_an_unknown_format_and_a_metric_no_longer_known(team):
    report = create(team).json()
    url = f"{REPORTS}/{report['id']}/run"
    viewer = client_for(team["viewer"])

    assert list(viewer.get(url, {"format": "xlsx"}).json()["errors"]) == ["format"]
    Report.objects.filter(pk=report["id"]).update(metrics=["runs", "retired_metric"])
    gone = viewer.get(url)
    assert gone.status_code == 400
    assert list(gone.json()["errors"]) == ["metrics"]


def test_reports_need_a_login(api):
    assert api.get(REPORTS).status_code == 401
    assert api.post(REPORTS, {"name": "x", "metrics": ["runs"]}, format="json").status_code == 401
