"""Budgets stop spending before it happens: a real worker, a local server that speaks OpenAI's API and
counts the calls, and budgets of tokens and cost per workspace, workflow and run."""

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection

from accounts.access import personal_workspace
from analytics.models import Event
from notifications.models import Match, Notification, Rule
from tests.processes import wait_until
from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.engine.test_runs import start
from tests.workflows.helpers import create
from tests.workflows.llm_servers import openai_server
from workflows.engine import budgets
from workflows.models import Budget, BudgetReservation, BudgetUsage, Run, StepRun
from workflows.services.credentials import credential_save

pytestmark = pytest.mark.django_db(transaction=True)

# A call's estimate: the prompt "Go" (1 token by the heuristic, 4 for the message) and max_tokens 100.
ESTIMATE = 105


@pytest.fixture
def workspace(user) -> str:
    return str(personal_workspace(user).pk)


@pytest.fixture
def llm(threaded_server, workspace):
    # Each call spends exactly its estimate, so a budget of 10 estimates has room for 10 calls.
    server = openai_server(threaded_server, text="Done.", model="gpt-4o-mini", tokens_in=5, tokens_out=100)
    credential_save(
        workspace_id=workspace, name="openai", kind="openai", value={"api_key": "sk-t", "base_url": server.base_url}
    )
    return server


def one_document(api, **config) -> dict:
    node = {
        "key": "doc",
        "type": "document",
        "prompt": "Go",
        "config": {"credential": "openai", "max_tokens": 100, **config},
    }
    return create(api, {"name": "Budgeted", "nodes": [node]})


def budget(workspace: str, *, limit, metric="tokens", period="day", workflow=None, threshold="0.8") -> Budget:
    return Budget.objects.create(
        workspace_id=workspace,
        workflow_id=workflow,
        name=f"{metric} per {period} {limit}",
        metric=metric,
        period=period,
        limit=Decimal(limit),
        threshold=Decimal(threshold),
    )


def test_fifty_runs_at_once_against_room_for_ten_calls_make_ten_calls(engine_worker, user_api, workspace, llm):
    limited = budget(workspace, limit=10 * ESTIMATE)
    workflow = one_document(user_api)

    ids = [start(user_api, workflow["id"])["id"] for _ in range(50)]
    runs = [wait_for_run(run_id, timeout=90) for run_id in ids]

    assert len(llm.requests) == 10
    assert sorted(run.status for run in runs).count("succeeded") == 10
    refused = [StepRun.objects.get(run_id=run.pk) for run in runs if run.status == "failed"]
    assert len(refused) == 40
    assert {step.error["type"] for step in refused} == {"budget_exceeded"}
    assert f"Budget {limited.name!r}" in refused[0].error["message"]
    usage = BudgetUsage.objects.get(budget=limited)
    assert (usage.spent, usage.calls, usage.refused) == (10 * ESTIMATE, 10, 40)
    assert not BudgetReservation.objects.exists()


def test_a_refused_step_never_calls_the_model_and_the_run_follows_its_on_failure(
    engine_worker, user_api, workspace, llm
):
    budget(workspace, limit="0.000001", metric="cost", period="month")
    nodes = [
        {
            "key": "doc",
            "type": "document",
            "prompt": "Go",
            "config": {"credential": "openai", "model": "gpt-4o-mini", "max_tokens": 100},
        },
        {"key": "after", "type": "text", "content": "went on", "depends_on": ["doc"], "trigger_rule": "all_done"},
    ]
    workflow = create(user_api, {"name": "Goes on", "settings": {"on_failure": "continue"}, "nodes": nodes})

    run = wait_for_run(start(user_api, workflow["id"])["id"], timeout=30)

    steps = {step.node_key: step for step in StepRun.objects.filter(run=run)}
    assert llm.requests == []
    assert steps["doc"].status == "failed" and steps["doc"].error["type"] == "budget_exceeded"
    assert steps["doc"].attempt == 1  # not retried: trying again cannot help
    assert BudgetUsage.objects.get().refused == 1  # counted, though the refusal rolled its reservation back
    assert steps["after"].status == "succeeded"


def test_usage_counts_what_calls_spent_and_crossing_the_threshold_is_an_event(engine_worker, user_api, workspace, llm):
    limited = budget(workspace, limit=3 * ESTIMATE, threshold="0.5")
    per_run = budget(workspace, limit=ESTIMATE, period="run", threshold="1")
    workflow = one_document(user_api)

    first = wait_for_run(start(user_api, workflow["id"])["id"], timeout=30)
    assert first.status == "succeeded"
    crossed = Event.objects.filter(type="budget.threshold", data__budget=str(limited.pk))
    assert not crossed.exists()  # 105 of 315: under half
    second = wait_for_run(start(user_api, workflow["id"])["id"], timeout=30)
    assert second.status == "succeeded"

    usage = BudgetUsage.objects.get(budget=limited)
    assert (usage.spent, usage.calls) == (2 * ESTIMATE, 2)
    assert usage.threshold_reached_at is not None
    wait_until(lambda: crossed.count() == 1, timeout=10, message="the budget.threshold event")
    event = crossed.get()
    assert (event.data["budget"], event.data["spent"]) == (str(limited.pk), "210.000000")
    # A run budget counts each run on its own: both runs had room for their one call.
    assert sorted(BudgetUsage.objects.filter(budget=per_run).values_list("period_key", flat=True)) == sorted(
        [str(first.pk), str(second.pk)]
    )


def test_a_workflows_budget_does_not_limit_another_workflow(engine_worker, user_api, workspace, llm):
    limited = one_document(user_api)
    other = one_document(user_api)
    budget(workspace, limit=1, workflow=limited["id"])

    assert wait_for_run(start(user_api, limited["id"])["id"], timeout=30).status == "failed"
    assert wait_for_run(start(user_api, other["id"])["id"], timeout=30).status == "succeeded"
    assert len(llm.requests) == 1


def test_threads_racing_for_the_last_of_a_budget_reserve_only_what_fits(user_api, workspace, llm):
    # The document steps wait behind an approval: nothing but these threads reserves (a worker of the
    # module's other tests may be running).
    nodes = [
        {"key": "ok", "type": "approval"},
        {"key": "doc", "type": "document", "prompt": "Go", "depends_on": ["ok"], "config": {"credential": "openai"}},
    ]
    workflow = create(user_api, {"name": "Held", "nodes": nodes})
    run_ids = [start(user_api, workflow["id"])["id"] for _ in range(20)]
    limited = budget(workspace, limit=5 * ESTIMATE)
    estimate = budgets.Spending(ESTIMATE, Decimal(0))
    outcomes: list[str] = []
    barrier = threading.Barrier(20)

    def reserve(run_id: str) -> None:
        try:
            run = Run.objects.get(pk=run_id)
            step = StepRun.objects.get(run=run, node_key="doc")
            in_force = budgets.applicable(run)
            barrier.wait()
            budgets.reserve(run, step, in_force, estimate)
            outcomes.append("reserved")
        except budgets.BudgetExceeded:
            outcomes.append("refused")
        except Exception as error:
            outcomes.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=reserve, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["refused"] * 15 + ["reserved"] * 5
    assert BudgetReservation.objects.filter(usage__budget=limited).count() == 5


def rule_on(workspace: str, *events: str) -> Rule:
    """A rule that puts the events into the inboxes of the workspace's owners."""
    return Rule.objects.create(
        workspace_id=workspace, name=" ".join(events), events=list(events), roles=["owner"], member_kinds=["in_app"]
    )


def test_crossing_the_threshold_notifies_through_a_rule_once_per_period(engine_worker, user_api, user, workspace, llm):
    limited = budget(workspace, limit=3 * ESTIMATE, threshold="0.5")
    rule = rule_on(workspace, "budget.threshold")
    workflow = one_document(user_api)

    for _ in range(3):  # the second call crosses half; the third is in the same period
        assert wait_for_run(start(user_api, workflow["id"])["id"], timeout=30).status == "succeeded"

    inbox = Notification.objects.filter(user=user)
    wait_until(inbox.exists, timeout=15, message="the budget.threshold notification")
    notification = inbox.get()
    assert notification.title == f"Budget {limited.name} reached 66 %"
    assert "210.000000 of 315.000000 tokens spent (day " in notification.body
    assert notification.level == "warning"
    assert notification.link == f"/dashboard/budgets/?workspace={workspace}"
    match = Match.objects.get(rule=rule)
    assert match.subject == str(limited.pk)
    data = match.event["data"]
    assert (data["name"], data["metric"], data["period"]) == (limited.name, "tokens", "day")
    assert data["limit"] == "315.000000"
    assert (data["spent"], data["percent"], data["remaining"]) == ("210.000000", 66, "105.000000")
    assert match.event["workflow"] is None  # a workspace budget: rules limited to a workflow do not take it


def test_a_spent_budget_notifies_once_however_many_steps_it_refuses(engine_worker, user_api, user, workspace, llm):
    limited = budget(workspace, limit=ESTIMATE, period="month")
    rule = rule_on(workspace, "budget.exceeded")
    workflow = one_document(user_api)
    assert wait_for_run(start(user_api, workflow["id"])["id"], timeout=30).status == "succeeded"

    ids = [start(user_api, workflow["id"])["id"] for _ in range(8)]
    assert {wait_for_run(run_id, timeout=60).status for run_id in ids} == {"failed"}

    assert BudgetUsage.objects.get(budget=limited).refused == 8
    inbox = Notification.objects.filter(user=user)
    wait_until(inbox.exists, timeout=15, message="the budget.exceeded notification")
    notification = inbox.get()
    assert notification.title == f"Budget {limited.name} is spent: steps are refused"
    assert notification.level == "error"
    data = Match.objects.get(rule=rule).event["data"]
    assert (data["spent"], data["estimate"], data["remaining"]) == ("105.000000", "105.000000", "0.000000")
    assert data["run"] in ids
    time.sleep(1)  # a second message, had one been sent with a later refusal, would have arrived by now
    assert Match.objects.filter(rule=rule).count() == 1
    assert inbox.count() == 1
