"""The budgets on the dashboard (the budgets page, and a workflow's page): each budget's current period
as a bar with its threshold, and the figures, rendered on the server from the budget tables."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.access import personal_workspace
from tests.factories import MembershipFactory, UserFactory
from workflows.models import Budget, BudgetReservation, BudgetUsage
from workflows.services.runs import run_trigger
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

CHAIN = {"name": "Reports", "nodes": [{"key": "first", "type": "text", "content": "one"}]}


def today() -> str:
    return datetime.now(UTC).date().isoformat()


@pytest.fixture
def owner():
    return UserFactory()


@pytest.fixture
def workflow(owner):
    return workflow_create(actor=owner, workspace=personal_workspace(owner), data=CHAIN)


@pytest.fixture
def spending(owner, workflow):
    """A workspace budget 600 of 1,000 tokens spent today, 100 held by a call in flight, 3 refused; a
    cost budget of the workflow never used; a run budget that refused one of two runs; and a budget of
    another workflow."""
    workspace = workflow.workspace
    daily = Budget.objects.create(
        workspace=workspace, name="Daily tokens", metric="tokens", period="day", limit=1000, threshold=Decimal("0.5")
    )
    usage = BudgetUsage.objects.create(
        budget=daily, period_key=today(), spent=600, calls=6, refused=3, threshold_reached_at=datetime.now(UTC)
    )
    run, _ = run_trigger(workflow=workflow, input={}, trigger="manual", actor=owner)
    BudgetReservation.objects.create(usage=usage, step=run.steps.get(), attempt=1, amount=100)
    BudgetUsage.objects.create(budget=daily, period_key="2020-01-01", spent=999)  # a past day: not shown
    monthly = Budget.objects.create(
        workspace=workspace, workflow=workflow, name="Monthly cost", metric="cost", period="month", limit="2.50"
    )
    per_run = Budget.objects.create(workspace=workspace, name="Per run", metric="tokens", period="run", limit=500)
    BudgetUsage.objects.create(budget=per_run, period_key="run-a", spent=500, refused=1)
    BudgetUsage.objects.create(budget=per_run, period_key="run-b", spent=100)
    other = workflow_create(actor=owner, workspace=workspace, data={**CHAIN, "name": "Other"})
    Budget.objects.create(workspace=workspace, workflow=other, name="Other's", metric="tokens", period="day", limit=1)
    return {"daily": daily, "monthly": monthly, "per_run": per_run}


def card(html: str, budget: Budget) -> str:
    found = re.search(rf'<li class="budget" data-budget="{budget.pk}".*?</li>', html, re.S)
    assert found, f"no card for {budget.name}"
    return found.group(0)


def figure(html: str, name: str) -> str:
    return re.search(rf'<dd class="{name}">([^<]*)</dd>', html).group(1)


def test_the_budgets_page_draws_each_budget_against_its_current_period(client, owner, spending):
    viewer = UserFactory()
    MembershipFactory(workspace=spending["daily"].workspace, user=viewer, role="viewer")
    client.force_login(viewer)

    answer = client.get(f"/dashboard/budgets/?workspace={spending['daily'].workspace_id}")

    assert answer.status_code == 200
    html = answer.content.decode()
    assert '<a href="/dashboard/budgets/?workspace=' in html and 'aria-current="page">Budgets</a>' in html
    daily = card(html, spending["daily"])
    assert [figure(daily, name) for name in ("spent", "reserved", "limit", "remaining", "refused")] == [
        "600",
        "100",
        "1000",
        "300",
        "3",
    ]
    assert '<rect class="spent" x="0" y="0" width="60.00"' in daily
    assert '<rect class="reserved" x="60.00" y="0" width="10.00"' in daily
    assert '<line class="threshold" x1="50.00" x2="50.00"' in daily
    assert "data-threshold-reached" in daily and f"Day {today()}" in daily
    monthly = card(html, spending["monthly"])
    assert [figure(monthly, name) for name in ("spent", "limit", "remaining", "refused")] == ["0", "2.5", "2.5", "0"]
    assert '<rect class="spent" x="0" y="0" width="0.00"' in monthly and "data-threshold-reached" not in monthly
    assert '<line class="threshold" x1="80.00"' in monthly
    per_run = card(html, spending["per_run"])
    assert "<svg" not in per_run
    assert [figure(per_run, name) for name in ("limit", "runs", "refused")] == ["500", "2", "1"]
    assert "Other&#x27;s" in html  # the page shows every budget of the workspace


def test_a_workflows_page_shows_the_budgets_covering_it(client, owner, workflow, spending):
    client.force_login(owner)

    html = client.get(f"/dashboard/workflows/{workflow.pk}/").content.decode()

    shown = re.findall(r'<li class="budget" data-budget="([0-9a-f-]+)"', html)
    assert sorted(shown) == sorted(str(spending[name].pk) for name in ("daily", "monthly", "per_run"))


def test_a_workspace_without_budgets_says_so(client, owner, workflow):
    client.force_login(owner)
    assert "No budgets." in client.get("/dashboard/budgets/").content.decode()
    assert "No budgets cover this workflow." in client.get(f"/dashboard/workflows/{workflow.pk}/").content.decode()


def test_strangers_get_404_and_see_no_budget(client, spending):
    client.force_login(UserFactory())
    assert client.get(f"/dashboard/budgets/?workspace={spending['daily'].workspace_id}").status_code == 404
    assert "Daily tokens" not in client.get("/dashboard/budgets/").content.decode()  # their own workspace


def test_the_page_costs_a_few_queries_however_many_budgets(client, owner, spending, django_assert_max_num_queries):
    client.force_login(owner)
    url = f"/dashboard/budgets/?workspace={spending['daily'].workspace_id}"
    client.get(url)
    for number in range(10):
        Budget.objects.create(
            workspace=spending["daily"].workspace, name=f"more {number}", metric="tokens", period="month", limit=1
        )
    with django_assert_max_num_queries(12):
        assert client.get(url).status_code == 200
