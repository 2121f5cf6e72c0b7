"""Budgets through the API: admins set them, members read them and their usage, every change audited;
bad bodies are 400s naming the field, with nothing written."""

import uuid
from decimal import Decimal

import pytest

from accounts.models import Membership
from audit.models import AuditEvent
from tests.conftest import client_for
from tests.factories import UserFactory, WorkspaceFactory
from workflows.engine import budgets as enforcement
from workflows.models import Budget, BudgetUsage
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

BUDGETS = "/api/v3/budgets"


@pytest.fixture
def team(db):
    workspace = WorkspaceFactory()
    people = {}
    for role in ("owner", "admin", "editor", "viewer"):
        people[role] = UserFactory()
        Membership.objects.create(workspace=workspace, user=people[role], role=role)
    workflow = workflow_create(actor=people["owner"], workspace=workspace, data={"name": "Costly"})
    return {"workspace": workspace, "workflow": workflow, **people}


def created(team, **body) -> dict:
    body = {"name": "monthly", "metric": "cost", "period": "month", "limit": "25.5", **body}
    answer = client_for(team["admin"]).post(BUDGETS, {"workspace": str(team["workspace"].pk), **body}, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_an_admin_sets_a_budget_members_read_it_and_its_usage(team):
    budget = created(team, workflow=str(team["workflow"].pk), threshold="0.9")

    assert (budget["limit"], budget["threshold"], budget["workflow"]) == (
        "25.500000",
        "0.900",
        str(team["workflow"].pk),
    )
    listed = client_for(team["viewer"]).get(BUDGETS).json()["results"]
    assert [item["name"] for item in listed] == ["monthly"]
    usage = client_for(team["viewer"]).get(f"{BUDGETS}/{budget['id']}/usage")
    assert usage.status_code == 200, usage.content
    assert usage.json()["spent"] == "0.000000" and usage.json()["remaining"] == "25.500000"
    assert usage.json()["period_key"] == usage.json()["period_start"][:7]
    assert AuditEvent.objects.filter(action="budget.created", target_id=budget["id"]).exists()


def test_usage_shows_spent_reserved_and_remaining(team):
    budget = Budget.objects.get(pk=created(team, metric="tokens", period="day", limit=1000)["id"])
    usage, _ = enforcement.usage_of(budget)
    usage.spent = Decimal(300)
    usage.save()

    body = client_for(team["viewer"]).get(f"{BUDGETS}/{budget.pk}/usage").json()

    assert (body["spent"], body["reserved"], body["remaining"]) == ("300.000000", "0.000000", "700.000000")
    assert BudgetUsage.objects.count() == 1  # reading a period does not make one


def test_a_run_budgets_usage_needs_a_run_of_it(team):
    budget = created(team, period="run")
    answer = client_for(team["viewer"]).get(f"{BUDGETS}/{budget['id']}/usage")
    assert answer.status_code == 400 and list(answer.json()["errors"]) == ["run"]
    answer = client_for(team["viewer"]).get(f"{BUDGETS}/{budget['id']}/usage", {"run": str(uuid.uuid4())})
    assert answer.status_code == 400 and list(answer.json()["errors"]) == ["run"]


def test_changes_are_audited_and_only_admins_and_owners_make_them(team):
    budget = created(team)
    url = f"{BUDGETS}/{budget['id']}"

    for role in ("editor", "viewer"):
        assert client_for(team[role]).patch(url, {"limit": "1"}, format="json").status_code == 403
        assert client_for(team[role]).delete(url).status_code == 403
    answer = client_for(team["owner"]).patch(url, {"limit": "30", "active": False}, format="json")
    assert answer.status_code == 200, answer.content
    assert (answer.json()["limit"], answer.json()["active"]) == ("30.000000", False)
    change = AuditEvent.objects.get(action="budget.updated")
    assert change.changes["limit"] == ["25.500000", "30.000000"]
    assert client_for(team["owner"]).delete(url).status_code == 204
    assert not Budget.objects.exists()
    assert AuditEvent.objects.filter(action="budget.deleted").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metric": "dollars"}, "metric"),
        ({"period": "week"}, "period"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "lots"}, "limit"),
        ({"limit": True}, "limit"),
        ({"threshold": "1.5"}, "threshold"),
        ({"workflow": str(uuid.uuid4())}, "workflow"),
        ({"name": "   "}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field_and_writes_nothing(team, body, field):
    full = {"workspace": str(team["workspace"].pk), "name": "b", "metric": "cost", "period": "day", "limit": "1"}
    answer = client_for(team["admin"]).post(BUDGETS, {**full, **body}, format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["errors"]
    assert not Budget.objects.exists()


def test_a_name_is_unique_in_its_workspace_and_strangers_see_nothing(team):
    budget = created(team)
    again = client_for(team["admin"]).post(
        BUDGETS,
        {"workspace": str(team["workspace"].pk), "name": "monthly", "metric": "cost", "period": "day", "limit": 1},
        format="json",
    )
    assert again.status_code == 400 and list(again.json()["errors"]) == ["name"]
    stranger = client_for(UserFactory())
    assert stranger.get(f"{BUDGETS}/{budget['id']}").status_code == 404
    assert stranger.get(f"{BUDGETS}/{budget['id']}/usage").status_code == 404
    assert stranger.get(BUDGETS).json()["results"] == []
