"""The budgets in the Django admin: the changelist with its filters and search, adding and changing
through the budget services (audited with the operator, as API changes are), a budget's periods shown
read-only, and deleting audited too."""

from decimal import Decimal

import pytest
from django.test import Client

from accounts.access import personal_workspace
from accounts.models import User
from audit.chain import chain_verify
from audit.models import AuditEvent
from tests.factories import UserFactory
from workflows.models import Budget, BudgetUsage
from workflows.services.budgets import WORKFLOW_INVALID
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/workflows/budget/"
USER_AGENT = "budget-admin-tests/1.0"
INLINE = {f"usages-{name}": "0" for name in ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS")}


@pytest.fixture
def root(db) -> User:
    return User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1")


@pytest.fixture
def operator(root) -> Client:
    """A superuser who is a member of no workspace: the admin serves them everywhere."""
    client = Client(HTTP_USER_AGENT=USER_AGENT)
    client.force_login(root)
    return client


@pytest.fixture(autouse=True)
def chain_still_verifies():
    yield
    verification = chain_verify()
    assert verification.ok, verification


@pytest.fixture
def owner(db) -> User:
    return UserFactory()


@pytest.fixture
def workflow(owner):
    return workflow_create(actor=owner, workspace=personal_workspace(owner), data={"name": "Newsletter"})


def budget_of(of, **fields) -> Budget:
    """A budget in the workspace of the workflow `of` (of the whole workspace unless `workflow` is given)."""
    values = {"name": "Daily tokens", "metric": "tokens", "period": "day", "limit": Decimal(1000), **fields}
    return Budget.objects.create(workspace=of.workspace, **values)


def events_since(start: int, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=start, action=action).order_by("id"))


def last_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_the_changelist_lists_filters_and_searches_budgets(operator, workflow):
    budget_of(workflow)
    budget_of(workflow, name="Newsletter cost", metric="cost", period="month", limit="2.5", workflow=workflow)
    budget_of(workflow, name="Old", active=False)

    html = operator.get(CHANGELIST).content.decode()
    for column in ("Name", "Workspace", "Workflow", "Metric", "Period", "Limit", "Threshold", "Active"):
        assert f">{column}</a>" in html or f">{column}</span>" in html, column
    assert html.count('<tr><td class="action-checkbox">') == 3

    only_cost = operator.get(CHANGELIST, {"metric__exact": "cost"}).content.decode()
    assert "Newsletter cost" in only_cost and "Daily tokens" not in only_cost
    inactive = operator.get(CHANGELIST, {"active__exact": "0"}).content.decode()
    assert ">Old<" in inactive and "Daily tokens" not in inactive
    found = operator.get(CHANGELIST, {"q": "newsletter"}).content.decode()  # by name, or by workflow name
    assert "Newsletter cost" in found and "Daily tokens" not in found


def test_adding_a_budget_goes_through_the_service_and_is_audited(operator, root, workflow):
    start = last_id()
    answer = operator.post(
        f"{CHANGELIST}add/",
        {
            "workspace": str(workflow.workspace_id),
            "name": "Monthly cost",
            "metric": "cost",
            "period": "month",
            "limit": "12.5",
            "threshold": "0.9",
            "workflow": str(workflow.pk),
            "active": "on",
            **INLINE,
        },
    )

    assert answer.status_code == 302, answer.content.decode()[:2000]
    budget = Budget.objects.get()
    assert (budget.limit, budget.threshold, budget.workflow, budget.created_by) == (
        Decimal("12.5"),
        Decimal("0.9"),
        workflow,
        root,
    )
    [created] = events_since(start, "budget.created")
    assert (created.actor, created.workspace, created.target_id) == (root, workflow.workspace, str(budget.pk))
    assert (created.ip, created.user_agent) == ("127.0.0.1", USER_AGENT)
    assert created.changes["limit"] == [None, "12.500000"]


def test_a_workflow_of_another_workspace_is_refused_and_nothing_is_audited(operator, workflow):
    someone = UserFactory()
    stranger = workflow_create(actor=someone, workspace=personal_workspace(someone), data={"name": "X"})
    start = last_id()
    answer = operator.post(
        f"{CHANGELIST}add/",
        {
            "workspace": str(workflow.workspace_id),
            "name": "Theirs",
            "metric": "tokens",
            "period": "day",
            "limit": "10",
            "threshold": "0.8",
            "workflow": str(stranger.pk),
            **INLINE,
        },
    )
    assert answer.status_code == 200
    assert answer.context["adminform"].form.errors["workflow"] == [WORKFLOW_INVALID]
    assert not Budget.objects.exists()
    assert not events_since(start, "budget.created")


def test_changing_a_budget_is_audited_and_its_periods_are_shown_read_only(operator, root, workflow):
    budget = budget_of(workflow)
    BudgetUsage.objects.create(budget=budget, period_key="2030-01-02", spent=640, calls=7, refused=2)

    page = operator.get(f"{CHANGELIST}{budget.pk}/change/")
    html = page.content.decode()
    assert "2030-01-02" in html and "640.000000" in html
    assert 'name="usages-0-spent"' not in html  # history, not a form
    start = last_id()
    answer = operator.post(
        f"{CHANGELIST}{budget.pk}/change/",
        {
            "name": "Daily tokens",
            "metric": "tokens",
            "period": "day",
            "limit": "1500",
            "threshold": "0.8",
            "active": "on",
            "usages-TOTAL_FORMS": "1",
            "usages-INITIAL_FORMS": "1",
            "usages-MIN_NUM_FORMS": "0",
            "usages-MAX_NUM_FORMS": "0",
            "usages-0-id": str(budget.usages.get().pk),
            "usages-0-budget": str(budget.pk),
        },
    )

    assert answer.status_code == 302, answer.content.decode()[:2000]
    [updated] = events_since(start, "budget.updated")
    assert (updated.actor, updated.user_agent) == (root, USER_AGENT)
    assert updated.changes == {"limit": ["1000.000000", "1500.000000"]}
    assert BudgetUsage.objects.get().spent == 640  # what was spent stays counted


def test_deleting_budgets_one_or_many_is_audited(operator, root, workflow):
    one, two, three = (budget_of(workflow, name=f"b{number}") for number in range(3))
    start = last_id()

    assert operator.post(f"{CHANGELIST}{one.pk}/delete/", {"post": "yes"}).status_code == 302
    answer = operator.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [str(two.pk), str(three.pk)], "post": "yes"}
    )

    assert answer.status_code == 302
    deleted = events_since(start, "budget.deleted")
    assert sorted(event.target_id for event in deleted) == sorted(str(budget.pk) for budget in (one, two, three))
    assert {event.actor for event in deleted} == {root}
    assert not Budget.objects.exists()
