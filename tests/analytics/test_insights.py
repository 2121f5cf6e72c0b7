"""Insights found from the rollups (analytics.services.insights): each kind opens with the numbers behind
it, is updated rather than duplicated, resolves when its condition ends, stays dismissed; the API lists
and dismisses them within the caller's workspaces; a high-severity one reaches the notification rules
as `insight.opened`."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection

from accounts.models import Membership
from analytics.models import Insight
from analytics.services.insights import ANALYTICS_LINK, insights_refresh
from analytics.services.recording import events_record, rollups_catch_up
from analytics.signals import insight_opened
from audit.models import AuditEvent
from config.celery import app as celery_app
from notifications.models import Notification, Rule
from notifications.services.events import MATCH_TASK, QUEUE
from notifications.services.matching import events_match
from tests.conftest import client_for
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2030, 3, 4, 12, 30, tzinfo=UTC)
INSIGHTS = "/api/v3/analytics/insights"


@pytest.fixture
def team(db):
    workspace = WorkspaceFactory()
    people = {}
    for role in ("editor", "viewer"):
        people[role] = UserFactory()
        Membership.objects.create(workspace=workspace, user=people[role], role=role)
    return {"workspace": workspace, **people, "stranger": UserFactory()}


def run(workspace, workflow, at, *, status="succeeded", duration_ms=1000, cost=0.0, steps=()) -> list[dict]:
    """The run.finished event of a run that finished at `at`, and a step.finished event per step."""
    subject = str(uuid.uuid4())
    where = {"workspace": str(workspace.pk), "workflow": str(workflow), "ts": at.isoformat()}
    data = {"status": status, "duration_ms": duration_ms, "cost": cost}
    events = [{"type": "run.finished", "subject": subject, **where, "data": data}]
    for step in steps:
        step = {"type": "http_request", "status": "succeeded", "attempt": 1, "duration_ms": 100, **step}
        events.append({"type": "step.finished", "subject": f"{subject}:{step['key']}", **where, "data": step})
    return events


def seed(*batches: list[dict]) -> None:
    events_record([event for batch in batches for event in batch])
    rollups_catch_up()


def insights(kind: str, **filters) -> list[Insight]:
    return list(Insight.objects.filter(kind=kind, **filters).order_by("subject"))


@pytest.fixture
def opened():
    """The insights each insight_opened signal carried."""
    sent = []

    def receiver(sender, *, insights, **kwargs):
        sent.append(insights)

    insight_opened.connect(receiver)
    yield sent
    insight_opened.disconnect(receiver)


# --- failure_spike -------------------------------------------------------------------------------


def failure_history(workspace, workflow, *, failing_now: int) -> list[dict]:
    """Six hours of the past week with 1 failure in 10 runs each, then 10 runs in the last hour of
    which `failing_now` failed."""
    events = []
    for hours_ago in range(2, 8):
        for index in range(10):
            status = "failed" if index == 0 else "succeeded"
            events += run(workspace, workflow, NOW - timedelta(hours=hours_ago * 10), status=status)
    for index in range(10):
        status = "failed" if index < failing_now else "succeeded"
        events += run(workspace, workflow, NOW - timedelta(minutes=10 + index), status=status)
    return events


def test_a_failure_spike_against_the_workflows_own_baseline_opens_with_its_z_score(
    team, opened, django_capture_on_commit_callbacks
):
    spiking, quiet = uuid.uuid4(), uuid.uuid4()
    seed(
        failure_history(team["workspace"], spiking, failing_now=6),
        failure_history(team["workspace"], quiet, failing_now=4),
    )

    with django_capture_on_commit_callbacks(execute=True):
        counts = insights_refresh(now=NOW)

    [insight] = insights("failure_spike")  # 4 failures are too few, whatever their z-score
    assert counts["opened"] >= 1
    assert (insight.subject, insight.workflow_id, insight.status) == (str(spiking), spiking, "open")
    # A baseline of 10 % with no deviation counts as ± 5 points: (60 % - 10 %) / 5 % = 10.
    assert insight.severity == "high"
    numbers = insight.numbers
    assert (numbers["failed"], numbers["runs"], numbers["failure_rate"]) == (6, 10, 0.6)
    assert (numbers["baseline_rate"], numbers["baseline_hours"], numbers["z"]) == (0.1, 6, 10.0)
    assert numbers["period"] == {"start": "2030-03-04T11:31:00+00:00", "end": "2030-03-04T12:31:00+00:00"}
    assert numbers["baseline"]["end"] == "2030-03-04T11:00:00+00:00"
    assert (insight.period_start, insight.period_end) == (
        datetime(2030, 3, 4, 11, 31, tzinfo=UTC),
        datetime(2030, 3, 4, 12, 31, tzinfo=UTC),
    )
    assert insight.link == f"/dashboard/workflows/{spiking}/"
    assert "6 of 10 runs (60 %)" in insight.title
    assert insight in [item for batch in opened for item in batch]


def test_a_second_refresh_updates_the_insight_and_a_later_one_resolves_it(team, opened):
    workflow = uuid.uuid4()
    seed(failure_history(team["workspace"], workflow, failing_now=6))
    insights_refresh(now=NOW)
    [first] = insights("failure_spike")

    counts = insights_refresh(now=NOW + timedelta(minutes=5))

    [again] = insights("failure_spike")
    assert again.pk == first.pk
    assert again.period_end == datetime(2030, 3, 4, 12, 36, tzinfo=UTC)
    assert counts["opened"] == 0 and counts["updated"] >= 1

    insights_refresh(now=NOW + timedelta(hours=2))  # the failing hour is over

    [resolved] = insights("failure_spike")
    assert (resolved.pk, resolved.status, resolved.resolved_at) == (first.pk, "resolved", NOW + timedelta(hours=2))


def test_a_dismissed_insight_stays_dismissed_and_is_not_announced_again(team, opened):
    workflow = uuid.uuid4()
    seed(failure_history(team["workspace"], workflow, failing_now=6))
    insights_refresh(now=NOW)
    [insight] = insights("failure_spike")
    client_for(team["editor"]).post(f"{INSIGHTS}/{insight.pk}/dismiss")
    seed([event for event in run(team["workspace"], workflow, NOW - timedelta(minutes=2), status="failed")])

    opened.clear()
    insights_refresh(now=NOW + timedelta(minutes=5))

    [still] = insights("failure_spike")
    assert (still.pk, still.status, still.numbers["failed"]) == (insight.pk, "dismissed", 7)
    assert not any(item.kind == "failure_spike" for batch in opened for item in batch)

    insights_refresh(now=NOW + timedelta(hours=2))
    assert insights("failure_spike")[0].status == "resolved"


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_at_once_open_one_insight(team):
    seed(failure_history(team["workspace"], uuid.uuid4(), failing_now=6))
    go, errors = threading.Barrier(4), []

    def refresh():
        try:
            go.wait()
            insights_refresh(now=NOW)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert len(insights("failure_spike")) == 1


# --- latency, nodes ------------------------------------------------------------------------------


def test_a_p95_half_as_slow_again_as_the_day_before_is_a_latency_regression_of_the_workflow_and_node(team):
    workflow, steady = uuid.uuid4(), uuid.uuid4()
    events = []
    for index in range(20):
        before, after = NOW - timedelta(hours=30, minutes=index), NOW - timedelta(hours=1, minutes=index)
        events += run(
            team["workspace"], workflow, before, duration_ms=1000, steps=[{"key": "fetch", "duration_ms": 100}]
        )
        events += run(
            team["workspace"], workflow, after, duration_ms=2000, steps=[{"key": "fetch", "duration_ms": 400}]
        )
        events += run(team["workspace"], steady, before, duration_ms=1000)
        events += run(team["workspace"], steady, after, duration_ms=1100)
    events += run(team["workspace"], steady, NOW, duration_ms=9000)  # one slow run is within the p95
    seed(events)

    insights_refresh(now=NOW)

    of_workflow, of_node = insights("latency_regression")
    assert (of_workflow.subject, of_workflow.severity) == (str(workflow), "warning")
    assert of_workflow.numbers["ratio"] == pytest.approx(2.0, rel=0.05)
    assert (of_workflow.numbers["runs"], of_workflow.numbers["previous_runs"]) == (20, 20)
    assert of_workflow.numbers["p95_ms"] == pytest.approx(2000, rel=0.02)
    assert of_workflow.numbers["previous_period"]["end"] == of_workflow.numbers["period"]["start"]
    assert (of_node.subject, of_node.severity, of_node.numbers["node_key"]) == (f"{workflow}/fetch", "high", "fetch")
    assert of_node.numbers["ratio"] == pytest.approx(4.0, rel=0.05)
    assert of_node.numbers["steps"] == 20


def test_fewer_than_twenty_runs_make_no_latency_regression(team):
    workflow = uuid.uuid4()
    events = []
    for index in range(19):
        events += run(team["workspace"], workflow, NOW - timedelta(hours=30, minutes=index), duration_ms=1000)
        events += run(team["workspace"], workflow, NOW - timedelta(hours=1, minutes=index), duration_ms=5000)
    seed(events)
    insights_refresh(now=NOW)
    assert insights("latency_regression") == []


def test_the_slowest_node_of_a_workflow_with_two_nodes_or_more(team):
    workflow, single = uuid.uuid4(), uuid.uuid4()
    steps = [{"key": "parse", "duration_ms": 100}, {"key": "fetch", "duration_ms": 900}]
    seed(
        run(team["workspace"], workflow, NOW - timedelta(days=3), steps=steps),
        run(team["workspace"], single, NOW - timedelta(days=3), steps=steps[:1]),
    )

    insights_refresh(now=NOW)

    [insight] = insights("slowest_node")
    assert (insight.subject, insight.severity, insight.numbers["node_key"]) == (str(workflow), "info", "fetch")
    assert insight.numbers["p95_ms"] == pytest.approx(900, rel=0.02)
    assert insight.numbers["next_node_key"] == "parse"


def test_a_node_retried_in_one_step_of_ten_that_then_succeeded_is_flaky(team):
    workflow = uuid.uuid4()
    events = []
    for index in range(10):
        steps = [
            {"key": "flaky", "attempt": 2 if index < 2 else 1},
            {"key": "steady"},
            {"key": "broken", "attempt": 3, "status": "failed"},
        ]
        events += run(team["workspace"], workflow, NOW - timedelta(hours=3, minutes=index), steps=steps)
    seed(events)

    insights_refresh(now=NOW)

    [insight] = insights("flaky_node")  # broken's steps mostly failed: failing, not flaky
    assert (insight.subject, insight.severity) == (f"{workflow}/flaky", "warning")
    assert {key: insight.numbers[key] for key in ("steps", "retries", "retry_rate", "succeeded")} == {
        "steps": 10,
        "retries": 2,
        "retry_rate": 0.2,
        "succeeded": 10,
    }


# --- cost ----------------------------------------------------------------------------------------


def test_cost_growth_of_the_workspace_and_a_workflow_and_the_top_spender(team):
    big, small = uuid.uuid4(), uuid.uuid4()
    seed(
        run(team["workspace"], big, NOW - timedelta(days=10), cost=2.0),
        run(team["workspace"], big, NOW - timedelta(days=2), cost=6.0),
        run(team["workspace"], small, NOW - timedelta(days=10), cost=1.0),
        run(team["workspace"], small, NOW - timedelta(days=2), cost=1.0),
    )

    insights_refresh(now=NOW)

    by_subject = {insight.subject: insight for insight in insights("cost_growth")}
    assert set(by_subject) == {str(big), "workspace"}  # small's cost did not grow
    assert (by_subject[str(big)].severity, by_subject[str(big)].numbers["ratio"]) == ("high", 3.0)
    workspace_growth = by_subject["workspace"]
    assert (workspace_growth.severity, workspace_growth.workflow_id, workspace_growth.link) == (
        "warning",
        None,
        ANALYTICS_LINK,
    )
    assert (workspace_growth.numbers["cost"], workspace_growth.numbers["previous_cost"]) == (7.0, 3.0)
    [top] = insights("top_spender")
    assert (top.subject, top.severity, top.numbers["share"], top.numbers["workspace_cost"]) == (
        str(big),
        "info",
        pytest.approx(0.8571, abs=1e-4),
        7.0,
    )


# --- tallies, unused -----------------------------------------------------------------------------


def test_many_retries_of_calls_to_one_host_say_the_dependency_is_unhealthy(team):
    workflow = uuid.uuid4()
    events = []
    for index in range(4):  # 3 retries each: 12 for api.example.com
        steps = [{"key": "call", "host": "api.example.com", "attempt": 4}, {"key": "other", "host": "ok.example.com"}]
        events += run(team["workspace"], workflow, NOW - timedelta(hours=2, minutes=index), steps=steps)
    for index in range(3):  # 9 for slow.example.com: not yet
        steps = [{"key": "call", "host": "slow.example.com", "attempt": 4}]
        events += run(team["workspace"], workflow, NOW - timedelta(hours=3, minutes=index), steps=steps)
    seed(events)

    insights_refresh(now=NOW)

    [insight] = insights("retries_hide_dependency")
    assert (insight.subject, insight.severity, insight.numbers["retries"]) == ("api.example.com", "warning", 12)
    assert insight.numbers["by_workflow"] == {str(workflow): 12}
    assert insight.link == f"/dashboard/workflows/{workflow}/"


def test_missed_schedule_slots_of_the_last_day(team):
    workflow = uuid.uuid4()
    where = {"workspace": str(team["workspace"].pk), "workflow": str(workflow)}
    seed(
        [
            {"type": "schedule.missed", "subject": "s1", **where, "ts": NOW - timedelta(hours=5), "data": {"slots": 3}},
            {"type": "schedule.missed", "subject": "s2", **where, "ts": NOW - timedelta(days=3), "data": {"slots": 9}},
        ]
    )

    insights_refresh(now=NOW)

    [insight] = insights("schedule_missing")
    assert (insight.subject, insight.severity, insight.numbers["missed_slots"]) == (str(workflow), "warning", 3)


def test_a_workflow_that_ran_this_year_but_not_for_30_days_is_unused(team):
    idle, busy = uuid.uuid4(), uuid.uuid4()
    seed(
        run(team["workspace"], idle, NOW - timedelta(days=40)),
        run(team["workspace"], busy, NOW - timedelta(days=40)),
        run(team["workspace"], busy, NOW - timedelta(days=10)),
    )

    insights_refresh(now=NOW)

    [insight] = insights("unused_workflow")
    assert (insight.subject, insight.severity) == (str(idle), "info")
    assert insight.numbers["last_run_day"] == "2030-01-23"
    assert insight.numbers["idle_days"] == 39


def test_rollups_of_a_workspace_that_no_longer_exists_open_nothing(team):
    gone = WorkspaceFactory()
    seed(run(gone, uuid.uuid4(), NOW - timedelta(days=40)))
    gone.delete()
    insights_refresh(now=NOW)
    assert Insight.objects.count() == 0


# --- API -----------------------------------------------------------------------------------------


def some_insights(team) -> tuple[uuid.UUID, uuid.UUID]:
    """A failure spike (high) and an unused workflow (info) in the team's workspace, another unused
    workflow elsewhere."""
    spiking, idle = uuid.uuid4(), uuid.uuid4()
    seed(
        failure_history(team["workspace"], spiking, failing_now=6),
        run(team["workspace"], idle, NOW - timedelta(days=40)),
        run(WorkspaceFactory(), uuid.uuid4(), NOW - timedelta(days=40)),
    )
    insights_refresh(now=NOW)
    return spiking, idle


def test_the_list_shows_the_callers_open_insights_newest_first(team):
    spiking, idle = some_insights(team)

    answer = client_for(team["viewer"]).get(INSIGHTS)

    assert answer.status_code == 200, answer.content
    results = answer.json()["results"]
    assert {result["kind"] for result in results} == {"failure_spike", "unused_workflow"}  # not theirs
    assert {result["workflow"] for result in results} == {str(spiking), str(idle)}
    first = results[0]
    assert set(first) >= {"id", "workspace", "workflow", "kind", "subject", "severity", "status", "title", "numbers"}
    assert set(first) >= {
        "period_start",
        "period_end",
        "link",
        "opened_at",
        "updated_at",
        "resolved_at",
        "dismissed_at",
    }
    assert [result["opened_at"] for result in results] == sorted(
        (result["opened_at"] for result in results), reverse=True
    )
    high = client_for(team["viewer"]).get(INSIGHTS, {"severity": "high", "workflow": str(spiking)}).json()["results"]
    assert [result["kind"] for result in high] == ["failure_spike"]
    assert client_for(team["stranger"]).get(INSIGHTS).json()["results"] == []
    other = client_for(team["viewer"]).get(INSIGHTS, {"workspace": str(WorkspaceFactory().pk)})
    assert other.json()["results"] == []


def test_an_editor_dismisses_an_insight_once_and_the_list_filters_by_status(team):
    some_insights(team)
    insight = Insight.objects.get(kind="failure_spike")
    editor = client_for(team["editor"])

    first = editor.post(f"{INSIGHTS}/{insight.pk}/dismiss")
    again = editor.post(f"{INSIGHTS}/{insight.pk}/dismiss")

    assert (first.status_code, again.status_code) == (200, 200), first.content
    assert first.json()["status"] == again.json()["status"] == "dismissed"
    assert first.json()["dismissed_at"] == again.json()["dismissed_at"]
    assert AuditEvent.objects.filter(action="insight.dismissed", target_id=str(insight.pk)).count() == 1
    assert [r["kind"] for r in editor.get(INSIGHTS).json()["results"]] == ["unused_workflow"]
    assert [r["id"] for r in editor.get(INSIGHTS, {"status": "dismissed"}).json()["results"]] == [str(insight.pk)]
    assert len(editor.get(INSIGHTS, {"status": "all"}).json()["results"]) == 2


def test_a_viewer_may_not_dismiss_and_a_stranger_finds_no_insight(team):
    some_insights(team)
    insight = Insight.objects.get(kind="failure_spike")

    viewer = client_for(team["viewer"]).post(f"{INSIGHTS}/{insight.pk}/dismiss")
    stranger = client_for(team["stranger"]).post(f"{INSIGHTS}/{insight.pk}/dismiss")
    unknown = client_for(team["editor"]).post(f"{INSIGHTS}/{uuid.uuid4()}/dismiss")

    assert (viewer.status_code, stranger.status_code, unknown.status_code) == (403, 404, 404)
    assert stranger.json() == unknown.json()
    assert Insight.objects.get(pk=insight.pk).status == "open"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"status": "closed"}, "status"),
        ({"severity": "critical"}, "severity"),
        ({"workspace": "nope"}, "workspace"),
        ({"workflow": "nope"}, "workflow"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(team, params, name):
    answer = client_for(team["viewer"]).get(INSIGHTS, params)
    assert answer.status_code == 400
    assert name in answer.json()["errors"]


# --- notification --------------------------------------------------------------------------------


def drained() -> list[dict]:
    """The events of the events_match messages on the broker's notifications queue, taken off it (as
    tests/workflows/test_notices.py reads them)."""
    events = []
    with celery_app.connection_for_read() as broker:
        queue = next(queue for queue in settings.CELERY_TASK_QUEUES if queue.name == QUEUE)(broker)
        queue.declare()
        while (message := queue.get(no_ack=True)) is not None:
            if message.headers.get("task") == MATCH_TASK:
                events += message.decode()[0][0]
    return events


def test_a_new_high_severity_insight_reaches_the_rules_as_insight_opened(team, django_capture_on_commit_callbacks):
    Rule.objects.create(workspace=team["workspace"], name="insights", events=["insight.opened"], roles=["editor"])
    workflow = uuid.uuid4()
    seed(failure_history(team["workspace"], workflow, failing_now=6))
    drained()

    with django_capture_on_commit_callbacks(execute=True):
        insights_refresh(now=NOW)

    insight = Insight.objects.get(kind="failure_spike")
    [event] = drained()
    assert (event["type"], event["id"], event["link"]) == ("insight.opened", f"insight:{insight.pk}", insight.link)
    assert event["workspace"] == {"id": str(team["workspace"].pk), "name": team["workspace"].name}
    assert event["workflow"]["id"] == str(workflow)
    assert event["data"]["numbers"]["z"] == 10.0

    events_match([event])  # as the notifications worker does with the message

    [notification] = Notification.objects.filter(user=team["editor"])
    assert notification.title == insight.title

    with django_capture_on_commit_callbacks(execute=True):
        insights_refresh(now=NOW + timedelta(minutes=5))
    assert drained() == []  # still open: not announced again
