"""The figures beyond runs' outcomes: tallies (triggers, errors, models, webhooks, logins, active
members), concurrency, splits by group, day and week buckets in the caller's zone, breakdowns, one
workflow's figures, exact percentiles for short ranges, and ranges read from mixed granularities."""

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from accounts.models import Membership
from analytics import selectors
from analytics.models import Rollup
from analytics.selectors import ranges
from analytics.services.recording import events_record, rollups_catch_up
from tests.analytics.facts import record, run_fact
from tests.conftest import client_for
from tests.factories import UserFactory, WorkspaceFactory
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

TIMESERIES = "/api/v3/analytics/timeseries"
BREAKDOWN = "/api/v3/analytics/breakdown"
OVERVIEW = "/api/v3/analytics/overview"


@pytest.fixture
def team(db):
    workspace = WorkspaceFactory()
    member = UserFactory()
    Membership.objects.create(workspace=workspace, user=member, role="viewer")
    return {"workspace": workspace, "member": member, "client": client_for(member)}


def event(workspace, type_, *, workflow=None, minutes_ago=5, **data) -> dict:
    return {
        "type": type_,
        "subject": str(uuid.uuid4()),
        "workspace": str(workspace.pk),
        "workflow": str(workflow) if workflow else None,
        "ts": timezone.now() - timedelta(minutes=minutes_ago),
        "data": data,
    }


def test_tallies_count_each_event_type_and_the_timeseries_reads_them(team):
    workspace, someone = team["workspace"], str(uuid.uuid4())
    events = [
        event(workspace, "webhook.received"),
        event(workspace, "webhook.received"),
        event(workspace, "webhook.rejected", reason="signature"),
        event(workspace, "schedule.missed", slots=3),
        event(workspace, "login", method="password", user=someone),
        event(workspace, "login", method="password", user=someone),
        event(workspace, "api_key.used", user=str(uuid.uuid4())),
        event(workspace, "notification.failed", channel="slack"),
    ]
    assert events_record(events) == 8
    assert events_record(events[:3]) == 0  # handed over twice: counted once
    rollups_catch_up()

    def total(metric):
        answer = team["client"].get(TIMESERIES, {"metric": metric, "range": "1h"})
        assert answer.status_code == 200, answer.content
        return sum(point["value"] for point in answer.json()["points"])

    assert total("webhooks_received") == 2
    assert total("webhooks_rejected") == 1
    assert total("schedules_missed") == 3
    assert total("logins") == 2
    assert total("api_key_uses") == 1
    assert total("active_members") == 2  # the same person twice is one member
    assert total("notifications_failed") == 1
    rejections = team["client"].get(BREAKDOWN, {"kind": "webhook_rejections", "range": "1h"}).json()["rows"]
    assert [(row["label"], row["count"]) for row in rejections] == [("signature", 1)]


def test_errors_are_counted_by_type_and_by_message_cluster(team):
    workflow = uuid.uuid4()
    failures = [
        run_fact(
            team["workspace"], workflow, status="failed", error_type="timeout", error_message=f"step 'x{n}' took {n} s"
        )
        for n in (31, 45, 60)
    ]
    failures.append(run_fact(team["workspace"], workflow, status="failed", error_type="http", error_message="HTTP 503"))
    record(failures)

    clusters = team["client"].get(BREAKDOWN, {"kind": "errors", "range": "1h"}).json()["rows"]
    types = team["client"].get(BREAKDOWN, {"kind": "error_types", "range": "1h"}).json()["rows"]

    assert [(row["label"], row["count"]) for row in clusters] == [
        ("timeout: step '…' took # s", 3),
        ("http: HTTP #", 1),
    ]
    assert [(row["label"], row["count"]) for row in types] == [("timeout", 3), ("http", 1)]


def test_documents_tokens_and_cost_split_by_model(team):
    workflow = uuid.uuid4()
    documents = [
        event(
            team["workspace"],
            "document.generated",
            workflow=workflow,
            provider="openai",
            model="gpt-x",
            tokens_in=100,
            tokens_out=50,
            cost=0.01,
        ),
        event(
            team["workspace"],
            "document.generated",
            workflow=workflow,
            provider="openai",
            model="gpt-x",
            tokens_in=300,
            tokens_out=70,
            cost=0.03,
            cached=True,
        ),
        event(
            team["workspace"],
            "document.generated",
            workflow=workflow,
            provider="local",
            model="small",
            tokens_in=10,
            tokens_out=5,
            cost=0,
        ),
    ]
    events_record(documents)
    rollups_catch_up()

    answer = team["client"].get(TIMESERIES, {"metric": "generation_tokens_in", "range": "1h", "group_by": "model"})

    assert answer.status_code == 200, answer.content
    series = {item["key"]: sum(point["value"] for point in item["points"]) for item in answer.json()["series"]}
    assert series == {"openai/gpt-x": 400, "local/small": 10}
    models = team["client"].get(BREAKDOWN, {"kind": "models", "range": "1h"}).json()["rows"]
    assert [(row["label"], row["count"], row["tokens_out"], row["cost"]) for row in models] == [
        ("openai/gpt-x", 2, 120, 0.04),
        ("local/small", 1, 5, 0.0),
    ]
    hits = team["client"].get(TIMESERIES, {"metric": "cache_hits", "range": "1h"}).json()["points"]
    assert sum(point["value"] for point in hits) == 1


def test_runs_split_by_status_and_by_workflow(team):
    first, second = uuid.uuid4(), uuid.uuid4()
    record(
        [run_fact(team["workspace"], first) for _ in range(3)]
        + [run_fact(team["workspace"], second, status="failed") for _ in range(2)]
    )

    by_status = team["client"].get(TIMESERIES, {"metric": "runs", "range": "1h", "group_by": "status"}).json()
    by_workflow = team["client"].get(TIMESERIES, {"metric": "runs", "range": "1h", "group_by": "workflow"}).json()

    totals = {item["key"]: sum(point["value"] for point in item["points"]) for item in by_status["series"]}
    assert totals == {"succeeded": 3, "failed": 2, "cancelled": 0}
    totals = {item["key"]: sum(point["value"] for point in item["points"]) for item in by_workflow["series"]}
    assert totals == {str(first): 3, str(second): 2}
    assert sum(point["value"] for point in by_workflow["points"]) == 5


def test_concurrency_is_the_mean_number_of_runs_in_flight(team):
    # Two runs of 30 s each inside the same minute: on average one run in flight in that minute.
    minute = bucket = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=10)
    facts = []
    for _ in range(2):
        fact = run_fact(team["workspace"], uuid.uuid4(), duration_ms=30_000)
        fact["started_at"] = (minute + timedelta(seconds=10)).isoformat()
        fact["finished_at"] = (minute + timedelta(seconds=40)).isoformat()
        facts.append(fact)
    record(facts)

    points = (
        team["client"].get(TIMESERIES, {"metric": "concurrency", "range": "1h", "bucket": "minute"}).json()["points"]
    )

    by_minute = {datetime.fromisoformat(point["t"].replace("Z", "+00:00")): point["value"] for point in points}
    assert by_minute[bucket] == pytest.approx(1.0)
    assert sum(value for value in by_minute.values()) == pytest.approx(1.0)


# These two tests need fixed dates (a Sunday night, the day Paris left summer time in 2026), which the
# hour rollups answer only while they are kept (DWC_ANALYTICS_HOUR_ROLLUP_DAYS, 90 days): they keep them
# here for as long as the dates need, so that the tests do not start failing when the dates grow old.
KEPT_FOR_EVER_DAYS = 36500


def test_day_and_week_buckets_start_at_the_callers_midnight(team, settings):
    # 23:30 UTC on a Sunday is 00:30 on Monday in Paris: the next day, and the next week, there.
    settings.DWC_ANALYTICS_HOUR_ROLLUP_DAYS = KEPT_FOR_EVER_DAYS
    workflow = uuid.uuid4()
    moment = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    fact = run_fact(team["workspace"], workflow)
    fact["finished_at"] = moment.isoformat()
    record([fact])
    params = {"metric": "runs", "from": "2026-11-25T00:00:00Z", "to": "2026-12-05T00:00:00Z", "workflow": str(workflow)}

    def day_of_the_run(**extra):
        answer = team["client"].get(TIMESERIES, {**params, **extra})
        assert answer.status_code == 200, answer.content
        return [point["t"] for point in answer.json()["points"] if point["value"]]

    assert day_of_the_run(bucket="day") == ["2026-11-29T00:00:00Z"]
    assert day_of_the_run(bucket="day", tz="Europe/Paris") == ["2026-11-30T00:00:00+01:00"]
    assert day_of_the_run(bucket="week") == ["2026-11-23T00:00:00Z"]
    assert day_of_the_run(bucket="week", tz="Europe/Paris") == ["2026-11-30T00:00:00+01:00"]


def test_a_day_across_a_daylight_saving_change_holds_its_25_hours(team, settings):
    # Paris left summer time on 25 October 2026: its day ran from 22:00 UTC the day before to 23:00 UTC.
    settings.DWC_ANALYTICS_HOUR_ROLLUP_DAYS = KEPT_FOR_EVER_DAYS
    workflow = uuid.uuid4()
    facts = []
    for moment in ("2026-10-24T22:30:00+00:00", "2026-10-25T22:30:00+00:00", "2026-10-25T23:30:00+00:00"):
        fact = run_fact(team["workspace"], workflow)
        fact["finished_at"] = moment
        facts.append(fact)
    record(facts)
    params = {"metric": "runs", "bucket": "day", "tz": "Europe/Paris", "workflow": str(workflow)}

    answer = team["client"].get(TIMESERIES, {**params, "from": "2026-10-20T00:00:00Z", "to": "2026-10-30T00:00:00Z"})

    assert answer.status_code == 200, answer.content
    counted = {point["t"]: point["value"] for point in answer.json()["points"] if point["value"]}
    assert counted == {"2026-10-25T00:00:00+02:00": 2, "2026-10-26T00:00:00+01:00": 1}


def test_a_short_range_has_exact_percentiles_a_long_one_histogram_ones(team):
    workflow = uuid.uuid4()
    record([run_fact(team["workspace"], workflow, duration_ms=ms) for ms in (100, 200, 300, 400, 1000)])

    short = team["client"].get(OVERVIEW, {"range": "24h"}).json()
    long = team["client"].get(OVERVIEW, {"range": "7d"}).json()

    assert short["percentiles"] == "exact"
    assert short["duration_p50"] == 300  # percentile_cont: exactly the middle value
    assert long["percentiles"] == "histogram"
    assert long["duration_p50"] == pytest.approx(300, rel=0.02)
    assert short["by_trigger"] == {}


def test_a_30_day_range_reads_whole_days_from_day_rows_and_its_edges_from_hours(team):
    workflow = uuid.uuid4()
    ages = [60 * 24 * days + 7 for days in (1, 5, 12, 20, 29)] + [30]
    record([run_fact(team["workspace"], workflow, minutes_ago=minutes) for minutes in ages])
    now = timezone.now()
    span = selectors.Range(now - timedelta(days=30), now)

    cover = ranges._cover(span, Rollup.Granularity.DAY, now)
    read = Rollup.objects.filter(cover, workflow_id=workflow)

    assert {row.granularity for row in read} == {"day", "hour"}
    assert sum(row.succeeded for row in read) == 6
    assert client_for(team["member"]).get(OVERVIEW, {"range": "30d"}).json()["runs"] == 6


def test_one_workflows_figures_hold_its_overview_nodes_and_errors(team):
    owner = UserFactory()
    Membership.objects.create(workspace=team["workspace"], user=owner, role="owner")
    workflow = workflow_create(actor=owner, workspace=team["workspace"], data={"name": "Measured"}).pk
    steps = [{"key": "fetch", "type": "http_request", "status": "failed", "attempt": 2, "duration_ms": 50}]
    failure = {"status": "failed", "error_type": "http", "error_message": "HTTP 500", "steps": steps}
    record(
        [
            run_fact(team["workspace"], workflow),
            run_fact(team["workspace"], workflow, **failure),
            run_fact(team["workspace"], uuid.uuid4()),  # another workflow
        ]
    )

    answer = team["client"].get(f"/api/v3/analytics/workflows/{workflow}", {"range": "1h"})

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["overview"]["runs"], body["overview"]["failed"], body["overview"]["retries"]) == (2, 1, 1)
    assert [(node["node_key"], node["retries"]) for node in body["nodes"]] == [("fetch", 1)]
    assert [(error["label"], error["count"]) for error in body["errors"]] == [("http: HTTP #", 1)]
    stranger = client_for(UserFactory()).get(f"/api/v3/analytics/workflows/{workflow}", {"range": "1h"})
    assert stranger.status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (TIMESERIES, {"tz": "Mars/Olympus"}, "tz"),
        (TIMESERIES, {"group_by": "colour"}, "group_by"),
        (TIMESERIES, {"group_by": "model", "metric": "runs"}, "metric"),
        (TIMESERIES, {"bucket": "fortnight"}, "bucket"),
        (BREAKDOWN, {"kind": "vibes"}, "kind"),
        (BREAKDOWN, {"kind": "errors", "limit": "0"}, "limit"),
        (BREAKDOWN, {"kind": "errors", "limit": "many"}, "limit"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(team, path, params, field):
    answer = team["client"].get(path, params)
    assert answer.status_code == 400, answer.content
    assert list(answer.json()["errors"]) == [field]


def test_days_of_another_zone_beyond_the_hours_kept_are_approximate(team):
    old = {"from": "2025-01-01T00:00:00Z", "to": "2025-02-01T00:00:00Z", "bucket": "day"}
    assert team["client"].get(TIMESERIES, {**old, "tz": "Asia/Tokyo"}).json()["approximate"] is True
    assert team["client"].get(TIMESERIES, old).json()["approximate"] is False
    paris = team["client"].get(TIMESERIES, {**old, "tz": "Europe/Paris"}).json()
    assert paris["points"][0]["t"] == datetime(2025, 1, 1, tzinfo=ZoneInfo("Europe/Paris")).isoformat()
