"""The budgets page in a real browser (Debian's Chromium, Playwright) against the real product: a
budget's bar fills to what its period spent and holds, its threshold is marked, and the page fits a
phone (390 px) as it fits a laptop (1366 px); nothing the Content-Security-Policy refuses."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.access import personal_workspace
from tests.factories import PASSWORD, UserFactory
from tests.workflows.dashboard.test_browser import (  # noqa: F401 - fixtures
    SCREENSHOTS,
    browser,
    needs_chromium,
    server,
    watch_for_script_errors,
)
from workflows.models import Budget, BudgetUsage
from workflows.services.workflows import workflow_create

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]

# The bar's parts as laid out: widths in CSS pixels, and the threshold line's x.
BAR = """(id) => {
    const card = document.querySelector(`li.budget[data-budget="${id}"]`);
    const box = (selector) => card.querySelector(selector).getBoundingClientRect();
    return {
        track: box(".budget-bar .track").width,
        spent: box(".budget-bar .spent").width,
        threshold: box(".budget-bar .threshold").left - box(".budget-bar .track").left,
        refused: card.querySelector("dd.refused").textContent,
        remaining: card.querySelector("dd.remaining").textContent,
    };
}"""


@pytest.fixture
def budgeted(transactional_db):
    """Made before the browser starts: Django refuses ORM calls while Playwright's event loop runs."""
    user = UserFactory(email="budgets@example.com")
    workspace = personal_workspace(user)
    workflow = workflow_create(actor=user, workspace=workspace, data={"name": "Spender"})
    daily = Budget.objects.create(
        workspace=workspace,
        name="A daily budget with a rather long name that must wrap on a phone",
        metric="tokens",
        period="day",
        limit=1000,
        threshold=Decimal("0.75"),
    )
    today = datetime.now(UTC).date().isoformat()
    BudgetUsage.objects.create(budget=daily, period_key=today, spent=400, refused=2)
    per_run = Budget.objects.create(
        workspace=workspace, workflow=workflow, name="Per run", metric="cost", period="run", limit="0.25"
    )
    return user, workflow, daily, per_run


@pytest.mark.parametrize("width", [1366, 390])
def test_the_budgets_page_draws_the_bars_and_fits_the_screen(server, budgeted, browser, width):  # noqa: F811
    user, workflow, daily, per_run = budgeted
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    script_errors: list[str] = []
    watch_for_script_errors(page, script_errors)
    page.goto(f"{server}/dashboard/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/dashboard/")

    page.get_by_role("link", name="Budgets").click()
    page.wait_for_url(f"{server}/dashboard/budgets/?workspace={daily.workspace_id}")

    bar = page.evaluate(BAR, str(daily.pk))
    assert bar["track"] > 100
    assert bar["spent"] == pytest.approx(bar["track"] * 0.4, abs=1.5)
    assert bar["threshold"] == pytest.approx(bar["track"] * 0.75, abs=2)
    assert (bar["refused"], bar["remaining"]) == ("2", "600")
    run_card = page.locator(f'li.budget[data-budget="{per_run.pk}"]')
    assert run_card.locator("svg").count() == 0
    assert run_card.locator("dd.limit").inner_text() == "0.25"
    assert page.get_by_role("img", name="400 spent and 0 reserved of 1000; threshold at 75 %").is_visible()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    page.screenshot(path=SCREENSHOTS / f"budgets-{width}.png", full_page=True)

    page.goto(f"{server}/dashboard/workflows/{workflow.pk}/")
    shown = page.locator("#budgets li.budget").evaluate_all("cards => cards.map((card) => card.dataset.budget)")
    assert sorted(shown) == sorted([str(daily.pk), str(per_run.pk)])
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    assert script_errors == []
