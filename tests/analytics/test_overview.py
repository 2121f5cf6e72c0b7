"""Finished runs counted into rollups once each, and the overview and timeseries read from them:
confined to the caller's workspaces, with 400s naming a bad parameter."""

import io
import threading
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from accounts.models import Membership
from analytics.histograms import merged
from analytics.models import Event, Rollup, WorkspaceRollup
from analytics.services.recording import analytics_prune, bucket_start, events_record, rollups_catch_up
from tests.analytics.facts import events_of, record, run_fact
from tests.conftest import client_for
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

OVERVIEW = "/api/v3/analytics/overview"
TIMESERIES = "/api/v3/analytics/timeseries"


@pytest.fixture
def team(db):
    workspace = WorkspaceFactory()
    member = UserFactory()
    Membership.objects.create(workspace=workspace, user=member, role="viewer")
    return {"workspace": workspace, "member": member, "stranger": UserFactory()}


def test_finished_runs_are_counted_once_into_their_minute_hour_and_day(team):
    workflow = uuid.uuid4()
    facts = [run_fact(team["workspace"], workflow, duration_ms=ms) for ms in (100, 200, 300)]
    facts.append(run_fact(team["workspace"], workflow, status="failed", timed_out=True, tokens_in=10, cost=0.5))

    assert record(facts) == 4
    assert record(facts[:2]) == 0  # handed over again (a redelivered task): counted once

    assert Event.objects.count() == 4
    for granularity in ("minute", "hour", "day"):
        rows = Rollup.objects.filter(granularity=granularity)
        assert sum(row.succeeded for row in rows) == 3
        assert sum(row.failed for row in rows) == 1
        assert sum(row.timed_out for row in rows) == 1
        assert sum(row.tokens_in for row in rows) == 10


FIGURES = ("succeeded", "failed", "cancelled", "timed_out", "tokens_in", "tokens_out", "duration_ms_max")


def test_a_workspaces_rollup_is_the_sum_of_its_workflows_rollups(team):
    other = WorkspaceFactory()
    workflows = {team["workspace"]: [uuid.uuid4(), uuid.uuid4()], other: [uuid.uuid4()]}
    facts = [
        run_fact(
            workspace,
            workflow,
            status=("succeeded", "failed", "cancelled")[n % 3],
            timed_out=n % 6 == 1,
            minutes_ago=n % 4 * 20,
            duration_ms=50 + n * 37,
            wait_ms=n * 3,
            tokens_in=n,
            tokens_out=2 * n,
        )
        for workspace, ids in workflows.items()
        for workflow in ids
        for n in range(30)
    ]
    events_record([event for fact in facts for event in events_of(fact)])
    rollups_catch_up(batch_size=7)  # batches that land in rows made by earlier ones: merged, not replaced

    expected: dict[tuple, dict] = {}
    for row in Rollup.objects.all():
        total = expected.setdefault((row.granularity, row.bucket, row.workspace_id), {})
        for name in FIGURES:
            value, before = getattr(row, name), total.get(name, 0)
            total[name] = max(before, value) if name.endswith("_max") else before + value
        for name in ("duration_histogram", "queue_wait_histogram"):
            total[name] = merged(total.get(name, {}), getattr(row, name))
    kept = {
        (row.granularity, row.bucket, row.workspace_id): {
            name: getattr(row, name) for name in (*FIGURES, "duration_histogram", "queue_wait_histogram")
        }
        for row in WorkspaceRollup.objects.all()
    }
    assert kept == expected
    assert (
        sum(row["succeeded"] + row["failed"] + row["cancelled"] for key, row in kept.items() if key[0] == "day") == 90
    )


def test_the_overview_gives_counts_rates_and_percentiles_of_the_callers_workspaces(team):
    workflow = uuid.uuid4()
    facts = [run_fact(team["workspace"], workflow, duration_ms=ms, wait_ms=ms / 10) for ms in range(100, 10100, 100)]
    facts += [run_fact(team["workspace"], workflow, status="failed") for _ in range(25)]
    facts.append(run_fact(WorkspaceFactory(), workflow))  # someone else's
    record(facts)

    answer = client_for(team["member"]).get(OVERVIEW, {"range": "24h"})

    assert answer.status_code == 200, answer.content
    figures = answer.json()
    assert (figures["runs"], figures["succeeded"], figures["failed"]) == (125, 100, 25)
    assert figures["success_rate"] == pytest.approx(0.8)
    assert figures["granularity"] == "minute"
    # 100 ms … 10,000 ms and 25 runs of 1,000 ms: nearest-rank p95 is 9,400 ms, within 2 %.
    assert figures["duration_p95"] == pytest.approx(9400, rel=0.02)
    assert figures["duration_max"] == 10000
    assert figures["queue_wait_p50"] is not None
    stranger = client_for(team["stranger"]).get(OVERVIEW, {"workspace": str(team["workspace"].pk)})
    assert stranger.json()["runs"] == 0


def test_a_range_older_than_a_day_is_read_from_hour_rows(team):
    record([run_fact(team["workspace"], uuid.uuid4(), minutes_ago=60 * 24 * 3)])
    answer = client_for(team["member"]).get(OVERVIEW, {"range": "7d"}).json()
    assert (answer["granularity"], answer["runs"]) == ("hour", 1)
    assert client_for(team["member"]).get(OVERVIEW, {"range": "24h"}).json()["runs"] == 0


def test_a_timeseries_has_every_bucket_of_the_range(team):
    workflow = uuid.uuid4()
    record([run_fact(team["workspace"], workflow, minutes_ago=m) for m in (5, 5, 30)])

    answer = client_for(team["member"]).get(TIMESERIES, {"range": "1h", "metric": "runs", "workflow": str(workflow)})

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["bucket"] == "minute"
    assert len(body["points"]) in (60, 61)
    assert sum(point["value"] for point in body["points"]) == 3
    assert max(point["value"] for point in body["points"]) == 2


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (OVERVIEW, {"range": "2w"}, "range"),
        (OVERVIEW, {"from": "yesterday"}, "from"),
        (OVERVIEW, {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        (OVERVIEW, {"to": "0001-01-02T00:00:00Z", "range": "7d"}, "to"),
        (OVERVIEW, {"workflow": "nope"}, "workflow"),
        (TIMESERIES, {"metric": "vibes"}, "metric"),
        (TIMESERIES, {"bucket": "second"}, "bucket"),
        (TIMESERIES, {"range": "30d", "bucket": "minute"}, "bucket"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(team, path, params, field):
    answer = client_for(team["member"]).get(path, params)
    assert answer.status_code == 400, answer.content
    assert list(answer.json()["errors"]) == [field]


def test_analytics_need_a_login(api):
    assert api.get(OVERVIEW).status_code == 401


def test_the_rebuild_command_makes_the_rollups_again_from_the_events(team):
    workflow = uuid.uuid4()
    record([run_fact(team["workspace"], workflow, minutes_ago=m) for m in (5, 10, 60 * 30)])
    before = sorted(Rollup.objects.values_list("granularity", "bucket", "succeeded"))
    workspace_before = sorted(WorkspaceRollup.objects.values_list("granularity", "bucket", "succeeded"))
    Rollup.objects.all().delete()
    WorkspaceRollup.objects.all().delete()

    out = io.StringIO()
    call_command("analytics_rebuild", "--since", (timezone.now() - timedelta(days=3)).date().isoformat(), stdout=out)

    assert "Rolled up 3 event(s)" in out.getvalue()
    assert sorted(Rollup.objects.values_list("granularity", "bucket", "succeeded")) == before
    assert sorted(WorkspaceRollup.objects.values_list("granularity", "bucket", "succeeded")) == workspace_before
    assert workspace_before == before  # one workflow: its workspace's figures are its own


@pytest.mark.parametrize("since", ["last week", "2026-13-40"])
def test_the_rebuild_command_refuses_a_date_it_cannot_read(since):
    with pytest.raises(CommandError, match="is not a date"):
        call_command("analytics_rebuild", "--since", since)


def test_pruning_keeps_minutes_for_a_day_hours_for_90_days_and_days_for_ever(team):
    ages = (5, 60 * 24 * 2, 60 * 24 * 100)  # minutes: now, two days ago, a hundred days ago
    record([run_fact(team["workspace"], uuid.uuid4(), minutes_ago=m) for m in ages])

    pruned = analytics_prune()

    assert pruned == {"minute": 2, "hour": 1, "events": 1}
    kept = sorted(Rollup.objects.values_list("granularity", flat=True))
    assert kept == ["day", "day", "day", "hour", "hour", "minute"]
    assert Event.objects.count() == 2


def test_nodes_are_listed_slowest_first_with_their_failures_and_retries(team):
    workflow = uuid.uuid4()

    def steps(fetch_ms: float, fetch_status: str = "succeeded", attempt: int = 1) -> list[dict]:
        return [
            {
                "key": "fetch",
                "type": "http_request",
                "status": fetch_status,
                "attempt": attempt,
                "duration_ms": fetch_ms,
            },
            {
                "key": "write",
                "type": "document",
                "status": "succeeded",
                "attempt": 1,
                "duration_ms": 5000,
                "cost": 0.25,
            },
        ]

    record(
        [
            run_fact(team["workspace"], workflow, steps=steps(100)),
            run_fact(team["workspace"], workflow, steps=steps(300, attempt=3)),
            run_fact(team["workspace"], workflow, status="failed", steps=steps(200, "failed", attempt=2)),
        ]
    )

    answer = client_for(team["member"]).get("/api/v3/analytics/nodes", {"workflow": str(workflow), "range": "1h"})

    assert answer.status_code == 200, answer.content
    write, fetch = answer.json()["nodes"]
    assert (write["node_key"], write["node_type"], write["steps"], write["cost"]) == ("write", "document", 3, 0.75)
    assert write["duration_p95"] == pytest.approx(5000, rel=0.02)
    assert (fetch["node_key"], fetch["succeeded"], fetch["failed"], fetch["retries"]) == ("fetch", 2, 1, 3)
    assert fetch["failure_rate"] == pytest.approx(1 / 3)
    assert fetch["duration_max"] == 300
    other = client_for(team["stranger"]).get("/api/v3/analytics/nodes", {"workflow": str(workflow)})
    assert other.json()["nodes"] == []
    by_type = client_for(team["member"]).get("/api/v3/analytics/nodes", {"by": "type", "range": "1h"}).json()["nodes"]
    assert [(node["node_type"], node["steps"], node["retries"]) for node in by_type] == [
        ("document", 3, 0),
        ("http_request", 3, 3),
    ]
    assert client_for(team["member"]).get("/api/v3/analytics/nodes", {"by": "colour"}).status_code == 400


@pytest.mark.django_db(transaction=True)
def test_workers_counting_runs_of_the_same_minute_at_once_all_count(team):
    workflow = uuid.uuid4()
    batches = [[run_fact(team["workspace"], workflow, minutes_ago=1) for _ in range(3)] for _ in range(8)]
    go = threading.Barrier(len(batches))
    errors = []

    def count(batch):
        try:
            go.wait()
            record(batch)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=count, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    for granularity in ("minute", "hour", "day"):
        assert Rollup.objects.get(granularity=granularity, workflow_id=workflow).succeeded == 24


def test_buckets_are_utc_whatever_offset_a_moment_comes_with():
    paris = datetime(2026, 12, 7, 0, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 23:30 UTC the day before
    assert bucket_start(paris, "day").isoformat() == "2026-12-06T00:00:00+00:00"
    assert bucket_start(paris, "hour").isoformat() == "2026-12-06T23:00:00+00:00"
