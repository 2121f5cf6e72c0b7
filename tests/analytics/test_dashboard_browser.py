"""The Analytics page in a real browser: Debian's Chromium driven by Playwright against the real product
(`manage.py serve`, embedded mode) on the test database, with a data set recorded through the public
analytics services and committed before the page loads. Asserts on the DOM, not on pixels;
screenshots go to var/screenshots/."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.access import personal_workspace
from analytics.models import Insight
from analytics.services.recording import events_record, rollups_catch_up
from tests.analytics.facts import events_of, run_fact
from tests.factories import PASSWORD, UserFactory
from tests.workflows.dashboard.test_browser import (  # noqa: F401 - fixtures
    SCREENSHOTS,
    browser,
    needs_chromium,
    server,
    watch_for_script_errors,
)
from workflows.services.workflows import workflow_create

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]

WORKFLOW = {
    "name": "Charted chain",
    "status": "active",
    "nodes": [
        {"key": "fetch", "type": "transform", "config": {"values": {"a": "b"}}},
        {"key": "write", "type": "text", "content": "done"},
    ],
}
# (provider, model, tokens in, tokens out, cost) of the document each succeeded run generated.
MODELS = [("openai", "gpt-4o-mini", 1000, 200, 0.0012)] * 6 + [("anthropic", "claude-3-5-haiku", 2000, 500, 0.0035)] * 3
ERROR_CLUSTER = "timeout: step '…' took # s"
CHARTS_SERIES = {
    "success-rate": 1,
    "runs-by-status": 3,  # succeeded, failed, cancelled
    "duration": 3,
    "queue-wait": 2,
    "cost-by-model": 2,
    "tokens-by-model": 2,
}
START_RUN = """async (workflow) => {
    const csrf = document.cookie.match(/csrftoken=([^;]+)/)[1];
    const headers = {"Content-Type": "application/json", "X-CSRFToken": csrf};
    const answer = await fetch(`/api/v3/workflows/${workflow}/runs`, {method: "POST", headers, body: '{"input": {}}'});
    if (!answer.ok) throw new Error(`run not started: ${answer.status}`);
}"""
LOADED = "() => document.getElementById('analytics').dataset.loaded === 'true'"


def document_event(fact: dict, provider: str, model: str, tokens_in: int, tokens_out: int, cost: float) -> dict:
    data = {"node_key": "write", "provider": provider, "model": model, "cached": False}
    return {
        "type": "document.generated",
        "subject": f"{fact['id']}:write",
        "workspace": fact["workspace"],
        "workflow": fact["workflow"],
        "ts": fact["finished_at"],
        "data": {**data, "tokens_in": tokens_in, "tokens_out": tokens_out, "cost": cost},
    }


@pytest.fixture
def seeded(transactional_db):
    """A non-admin's workspace with 12 finished runs of one workflow in the last hour: 9 succeeded, each
    with a document (6 by one model, 3 by another), and 3 failed with one error cluster. Made and
    committed before the browser starts (Django refuses ORM calls in Playwright's event loop)."""
    user = UserFactory(email=f"analyst-{uuid.uuid4().hex[:8]}@example.com")
    workspace = personal_workspace(user)
    workflow = workflow_create(actor=user, workspace=workspace, data=WORKFLOW)
    events = []
    for index in range(12):
        failed = index >= 9
        steps = [
            {"key": "fetch", "type": "transform", "status": "succeeded", "attempt": 1, "duration_ms": 200 + index},
            {"key": "write", "type": "text", "status": "failed" if failed else "succeeded", "duration_ms": 900},
        ]
        extra = {"trigger": "manual", "steps": steps}
        if failed:
            extra |= {"error_type": "timeout", "error_message": f"step 'fetch{index}' took {30 + index} s"}
        else:
            _, _, tokens_in, tokens_out, cost = MODELS[index]
            extra |= {"tokens_in": tokens_in, "tokens_out": tokens_out, "cost": cost}
        fact = run_fact(
            workspace,
            workflow.pk,
            status="failed" if failed else "succeeded",
            minutes_ago=5 + 4 * index,
            duration_ms=1000 + 100 * index,
            wait_ms=50 + 10 * index,
            **extra,
        )
        events += events_of(fact)
        if not failed:
            events.append(document_event(fact, *MODELS[index]))
    assert events_record(events) == len(events)
    rollups_catch_up()
    now = timezone.now()
    Insight.objects.create(
        workspace=workspace,
        workflow_id=workflow.pk,
        kind=Insight.Kind.FAILURE_SPIKE,
        subject=str(workflow.pk),
        severity=Insight.Severity.HIGH,
        title="Failures of Seeded rose to 25 % in the last hour.",
        period_start=now - timedelta(hours=1),
        period_end=now,
    )
    return user, workflow


def log_in(page, base, user, url):
    page.goto(f"{base}{url}")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}{url}")


def figure(page, name: str) -> str:
    return page.locator(f'[data-figure="{name}"]').inner_text()


def rows(page, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"#{table} tbody tr", "rows => rows.map(row => [...row.cells].map(cell => cell.textContent.trim()))"
    )


def assert_figures_and_charts(page):
    assert figure(page, "runs") == "12"
    assert figure(page, "success_rate") == "75 %"
    assert figure(page, "cost") == "$0.0177"
    assert figure(page, "duration_p95").endswith(" s")
    for chart, series in CHARTS_SERIES.items():
        plot = page.locator(f"#chart-{chart}")
        assert plot.locator("canvas").count() == 1, chart
        assert plot.get_attribute("data-series") == str(series), chart
        assert plot.locator(".u-legend .u-series").count() == series + 1, chart  # and the time
        assert plot.locator(".chart-summary").inner_text() not in ("", "Loading…"), chart
    summary = page.locator("#chart-runs-by-status .chart-summary").inner_text()
    assert summary == "succeeded 9 in all; failed 3 in all; cancelled 0 in all."
    numbers = rows(page, "chart-runs-by-status .chart-numbers")  # the chart's table, for screen readers
    assert [sum(int(row[column]) for row in numbers) for column in (1, 2, 3)] == [9, 3, 0]
    assert rows(page, "errors") == [[ERROR_CLUSTER, "3"]]
    assert rows(page, "models") == [
        ["openai/gpt-4o-mini", "6", "6,000", "1,200", "$0.0072"],
        ["anthropic/claude-3-5-haiku", "3", "6,000", "1,500", "$0.0105"],
    ]


def test_the_analytics_page_shows_the_seeded_figures_at_1366_and_390_px_and_follows_new_runs(server, seeded, browser):  # noqa: F811
    user, workflow = seeded
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    script_errors = []
    watch_for_script_errors(page, script_errors)

    log_in(page, server, user, "/dashboard/analytics/")
    page.wait_for_function(LOADED)
    assert page.locator("#load-error").is_hidden()
    assert_figures_and_charts(page)
    assert "HIGH Failures of Seeded rose to 25 % in the last hour." in page.locator("#insights").inner_text()
    assert page.locator("#chart-success-rate canvas").bounding_box()["width"] > 400
    page.screenshot(path=SCREENSHOTS / "analytics-1366.png", full_page=True)

    page.get_by_role("link", name="7d", exact=True).click()
    page.wait_for_function("() => location.search.includes('range=7d')")
    page.wait_for_function(LOADED)
    assert figure(page, "runs") == "12"

    page.goto(f"{server}/dashboard/analytics/workflows/{workflow.pk}/?workspace={workflow.workspace_id}")
    page.wait_for_function(LOADED)
    page.wait_for_function("() => document.getElementById('workflow-name').textContent === 'Charted chain'")
    assert_figures_and_charts(page)
    nodes = rows(page, "nodes")
    assert [node[:4] for node in nodes] == [["write", "text", "12", "25 %"], ["fetch", "transform", "12", "0 %"]]
    page.screenshot(path=SCREENSHOTS / "analytics-workflow-1366.png", full_page=True)

    phone = context.new_page()
    watch_for_script_errors(phone, script_errors)
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"{server}/dashboard/analytics/")
    phone.wait_for_function(LOADED)
    assert_figures_and_charts(phone)
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= 390
    assert phone.locator("#chart-duration canvas").bounding_box()["width"] < 390
    phone.screenshot(path=SCREENSHOTS / "analytics-390.png", full_page=True)

    # A run started now finishes within a second or two: the page reads the figures again by itself.
    page.evaluate("window.dwcMarker = 'the same page'")
    page.evaluate(START_RUN, str(workflow.pk))
    page.wait_for_function("() => document.querySelector('[data-figure=runs]').textContent === '13'", timeout=30000)
    assert figure(page, "success_rate") == "76.9 %"
    page.wait_for_function("() => document.querySelector('#nodes tbody td:nth-child(3)').textContent === '13'")
    assert page.evaluate("window.dwcMarker") == "the same page"

    context.close()
    assert script_errors == []
