"""The builder's node panel and run panel (static/dashboard/builder/) in a real browser (Debian's
Chromium, Playwright), before the editor page that will hold them exists: a harness page in a tmp dir,
served with the repository's static/ folder by a small HTTP server under the product's own
Content-Security-Policy, imports the modules and feeds them the real node-types catalog."""

import json
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.processes import PROJECT_DIR
from tests.workflows.dashboard.test_browser import (  # noqa: F401 - fixtures
    SCREENSHOTS,
    browser,
    needs_chromium,
    watch_for_script_errors,
)
from workflows.node_catalog import node_types

pytestmark = [needs_chromium]

CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; object-src 'none'"
WORKFLOW_ID = "5b0c1f7e-2f7a-4c1e-9a36-0c9d3f6c2a11"
RUN_ID = "8d1f7a52-0b8e-4b8f-8d4a-6f0e2f1b9c33"

HARNESS_HTML = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Builder panels</title>
  <link rel="stylesheet" href="/static/dashboard/dashboard.css">
  <link rel="stylesheet" href="/static/dashboard/builder.css">
  <script type="module" src="/harness.js"></script>
</head>
<body><main><div id="panel"></div></main></body>
</html>
"""

# Opens a panel with what the test gives it; onChange calls end up in window.changes.
HARNESS_JS = """
import { openNodePanel } from "/static/dashboard/builder/node-panel.js";
import { openRunPanel } from "/static/dashboard/builder/run-panel.js";

const catalog = await (await fetch("/catalog.json")).json();
const container = document.getElementById("panel");
window.changes = [];
window.started = [];

window.openNode = (type, node, { readOnly = false } = {}) => {
  const nodeType = catalog.find((entry) => entry.type === type);
  window.changes = [];
  window.panel = openNodePanel(container, {
    nodeType,
    node,
    credentials: [{ name: "crm-token", kind: "bearer" }, { name: "openai-key", kind: "openai" }],
    scope: {
      nodes: [
        { key: "outline", type: "document", branches: [] },
        { key: "check", type: "condition", branches: ["true", "false"] },
      ],
      input: ["topic", "name"],
    },
    readOnly,
    onChange: (updated) => window.changes.push(updated),
  });
};

window.openRun = (workflow) => {
  window.started = [];
  window.panel = openRunPanel(container, { workflow, onStarted: (run) => window.started.push(run) });
};

window.catalogTypes = catalog.map((entry) => entry.type);
window.harnessReady = true;
"""


class HarnessHandler(SimpleHTTPRequestHandler):
    """/static/… from the repository's static/ folder, everything else from the harness directory."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript", ".json": "application/json"}

    def translate_path(self, path):
        if path.startswith("/static/"):
            relative = path.split("?", 1)[0][len("/static/") :]
            return str(PROJECT_DIR / "static" / relative)
        return super().translate_path(path)

    def end_headers(self):
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    root = tmp_path_factory.mktemp("builder-harness")
    (root / "index.html").write_text(HARNESS_HTML)
    (root / "harness.js").write_text(HARNESS_JS)
    (root / "catalog.json").write_text(json.dumps(node_types()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(HarnessHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def page(browser, harness):  # noqa: F811
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.script_errors = []
    watch_for_script_errors(page, page.script_errors)
    page.goto(f"{harness}/index.html")
    page.wait_for_function("() => window.harnessReady === true")
    yield page
    context.close()


def open_node(page, node_type: str, node: dict, *, read_only: bool = False) -> None:
    page.evaluate("([type, node, readOnly]) => window.openNode(type, node, {readOnly})", [node_type, node, read_only])


def last_change(page) -> dict:
    page.wait_for_function("() => window.changes.length > 0")
    return page.evaluate("window.changes[window.changes.length - 1]")


def settle(page) -> None:
    """Typing is reported 300 ms after the last keystroke."""
    page.wait_for_timeout(450)


def example_node(entry: dict) -> dict:
    node = {**entry["defaults"], **entry["example"], "type": entry["type"], "position": {"x": 0, "y": 0}}
    node["config"] = {**entry["defaults"]["config"], **entry["example"].get("config", {})}
    node["depends_on"] = []
    return node


def test_every_node_types_form_renders_from_its_schema_without_script_errors(page):
    catalog = node_types()
    assert page.evaluate("window.catalogTypes") == [entry["type"] for entry in catalog]
    for entry in catalog:
        open_node(page, entry["type"], example_node(entry))
        panel = page.locator(".node-panel")
        assert panel.get_attribute("data-type") == entry["type"]
        assert page.get_by_role("textbox", name="Key", exact=True).input_value() == entry["example"]["key"]
        for name in entry["schema"]["properties"]["config"].get("properties", {}):
            assert panel.locator(f'[data-path="config.{name}"]').count() >= 1, (entry["type"], name)
        if entry["uses_prompt"]:
            assert page.get_by_label("Prompt").input_value() == entry["example"].get("prompt", "")
        assert page.evaluate("window.changes") == []
    assert page.script_errors == []


def test_editing_an_http_requests_url_method_and_a_header_gives_the_right_node(page):
    node = {"key": "fetch", "type": "http_request", "title": "Fetch", "config": {"url": "https://a.example/"}}
    open_node(page, "http_request", node)
    url = page.get_by_label("URL")
    url.fill("https://api.example/items/{{ input.topic }}")
    settle(page)
    page.get_by_label("Method").select_option("POST")
    page.get_by_role("button", name="Add to Headers").click()
    page.get_by_label("Headers: name 1").fill("X-Trace")
    page.get_by_label("Headers: value 1").fill("{{ run.id }}")
    settle(page)

    changed = last_change(page)
    assert changed["config"] == {
        "url": "https://api.example/items/{{ input.topic }}",
        "method": "POST",
        "headers": {"X-Trace": "{{ run.id }}"},
    }
    assert (changed["key"], changed["type"], changed["title"]) == ("fetch", "http_request", "Fetch")
    assert page.evaluate("window.changes.length") <= 4, "typing is debounced, not one change per key"

    page.get_by_role("button", name="Remove headers X-Trace").click()
    assert "headers" not in last_change(page)["config"]
    assert page.script_errors == []


def test_a_credential_is_picked_from_the_workspaces_credentials(page):
    open_node(page, "http_request", {"key": "fetch", "type": "http_request", "config": {"url": "https://a.example/"}})
    select = page.get_by_label("Credential")
    assert select.locator("option").all_inner_texts() == ["— none —", "crm-token (bearer)", "openai-key (openai)"]
    select.select_option("crm-token")
    assert last_change(page)["config"]["credential"] == "crm-token"
    select.select_option("")
    assert "credential" not in last_change(page)["config"]


def test_a_delay_switches_between_seconds_and_until(page):
    open_node(page, "delay", {"key": "wait", "type": "delay", "config": {"seconds": 30}})
    assert page.get_by_role("spinbutton", name="Seconds", exact=True).input_value() == "30"
    assert page.get_by_label("Until").is_hidden()

    page.get_by_label("Use", exact=True).select_option(label="Until")
    assert last_change(page)["config"] == {}
    assert page.get_by_role("spinbutton", name="Seconds", exact=True).is_hidden()
    page.get_by_label("Until").fill("2030-01-01T09:00:00Z")
    settle(page)
    assert last_change(page)["config"] == {"until": "2030-01-01T09:00:00Z"}

    page.get_by_label("Use", exact=True).select_option(label="Seconds")
    page.get_by_role("spinbutton", name="Seconds", exact=True).fill("5")
    settle(page)
    assert last_change(page)["config"] == {"seconds": 5}

    timeout = page.get_by_role("spinbutton", name="Timeout", exact=True)
    timeout.fill("60")
    settle(page)
    assert last_change(page)["timeout"] == 60
    timeout.fill("")
    settle(page)
    assert last_change(page)["timeout"] is None  # integer or null: empty is null
    assert page.script_errors == []


def test_set_errors_pins_messages_on_their_fields_and_lists_the_rest(page):
    open_node(page, "http_request", {"key": "fetch", "type": "http_request", "config": {"url": "ftp://x"}})
    panel = page.evaluate_handle("window.panel")
    errors = {"config.url": ["Only http and https URLs."], "key": ["Taken."], "nodes.9": ["Odd."]}
    panel.evaluate("(panel, errors) => panel.setErrors(errors)", errors)
    url = page.get_by_label("URL")
    assert url.get_attribute("aria-invalid") == "true"
    url_field = page.locator('[data-path="config.url"]')
    assert url_field.get_by_role("alert").inner_text() == "Only http and https URLs."
    described_by = url.get_attribute("aria-describedby").split()
    assert page.locator(f"#{described_by[-1]}").inner_text() == "Only http and https URLs."
    assert page.get_by_role("textbox", name="Key", exact=True).get_attribute("aria-invalid") == "true"
    assert page.locator(".node-panel-problems").inner_text() == "nodes.9: Odd."
    page.screenshot(path=SCREENSHOTS / "builder-node-panel-1366.png", full_page=True)

    panel.evaluate("(panel) => panel.setErrors({'prompt': ['line 2: unexpected }']})")
    assert url.get_attribute("aria-invalid") is None
    assert page.locator(".sf-error").count() == 0  # an http_request has no prompt: listed at the top
    assert page.locator(".node-panel-problems").inner_text() == "prompt: line 2: unexpected }"


def test_template_completion_inserts_a_nodes_content(page):
    open_node(page, "document", {"key": "draft", "type": "document", "prompt": "", "config": {}})
    prompt = page.get_by_label("Prompt")
    prompt.click()
    prompt.press_sequentially("Improve {{ ")
    listbox = page.get_by_role("listbox")
    assert listbox.is_visible()
    options = listbox.get_by_role("option").all_inner_texts()
    assert "input.topic" in options and "nodes.outline.content" in options and "run.id" in options
    assert not any(option.startswith("nodes.draft.") for option in options)

    prompt.press_sequentially("nodes.o")
    assert listbox.get_by_role("option").all_inner_texts() == [
        "nodes.outline.output",
        "nodes.outline.content",
        "nodes.outline.title",
    ]
    prompt.press("ArrowDown")
    active = prompt.get_attribute("aria-activedescendant")
    assert page.locator(f"#{active}").inner_text() == "nodes.outline.content"
    prompt.press("Enter")
    assert listbox.is_hidden()
    prompt.press_sequentially(" }}")
    assert prompt.input_value() == "Improve {{ nodes.outline.content }}"
    settle(page)
    assert last_change(page)["prompt"] == "Improve {{ nodes.outline.content }}"
    assert page.locator(".tpl-backdrop .tpl-expression").inner_text() == "{{ nodes.outline.content }}"
    backdrop, textarea = (page.locator(selector).first.bounding_box() for selector in (".tpl-backdrop", ".tpl-input"))
    assert backdrop == textarea  # the highlighted copy lies exactly under the text

    prompt.press_sequentially(" {{ nodes.check.output.r")
    assert listbox.get_by_role("option").all_inner_texts() == ["nodes.check.output.result"]
    page.screenshot(path=SCREENSHOTS / "builder-template-completion-1366.png")
    prompt.press("Escape")
    assert listbox.is_hidden()
    assert page.script_errors == []


def test_a_conditions_expression_completes_names_without_braces(page):
    open_node(page, "condition", {"key": "gate", "type": "condition", "config": {"expression": ""}})
    expression = page.get_by_label("Expression")
    expression.click()
    expression.press_sequentially("input.t")
    assert page.get_by_role("listbox").get_by_role("option").all_inner_texts() == ["input.topic"]
    expression.press("Tab")
    expression.press_sequentially(" == 'x'")
    settle(page)
    assert last_change(page)["config"] == {"expression": "input.topic == 'x'"}


def test_read_only_disables_every_control_and_reports_nothing(page):
    entry = next(entry for entry in node_types() if entry["type"] == "http_request")
    node = example_node(entry)
    node["config"]["headers"] = {"Accept": "application/json"}
    del node["retry"]
    open_node(page, "http_request", node, read_only=True)
    assert page.get_by_label("Max attempts").get_attribute("placeholder") == "1"  # the type's defaults
    controls = page.locator(".node-panel :is(input, select, textarea, button)")
    assert controls.count() > 10
    assert controls.evaluate_all("(all) => all.filter((el) => !el.disabled).map((el) => el.outerHTML)") == []
    assert page.evaluate("window.changes") == []


def test_the_node_panel_fits_a_phone(page):
    page.set_viewport_size({"width": 390, "height": 844})
    entry = next(entry for entry in node_types() if entry["type"] == "http_request")
    node = example_node(entry)
    node["config"]["headers"] = {"Authorization": "Bearer {{ input.name }}"}
    open_node(page, "http_request", node)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    page.screenshot(path=SCREENSHOTS / "builder-node-panel-390.png", full_page=True)


def test_the_run_panel_shows_a_400_on_its_fields_then_reports_the_started_run(page):
    """POST workflows/{id}/runs is answered by page.route(): a test double for this one HTTP exchange,
    because the harness is not served by the product. The real endpoint, its validation and its 400
    shape are tested in tests/workflows/test_api_lifecycle.py and test_browser.py."""
    posted = []

    def answer(route):
        posted.append(route.request.post_data_json)
        if len(posted) == 1:
            body = {
                "type": "about:blank",
                "title": "Invalid input.",
                "status": 400,
                "detail": "Invalid input.",
                "errors": {
                    "input.count": ["0 is less than the minimum of 1"],
                    "input.name": ["'name' is a required property"],
                },
            }
            route.fulfill(status=400, content_type="application/problem+json", body=json.dumps(body))
        else:
            run = {"id": RUN_ID, "status": "queued", "workflow": WORKFLOW_ID, "input": posted[-1]["input"]}
            route.fulfill(status=202, content_type="application/json", body=json.dumps(run))

    page.route(f"**/api/v3/workflows/{WORKFLOW_ID}/runs", answer)
    workflow = {
        "id": WORKFLOW_ID,
        "name": "Newsletter",
        "input_schema": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "description": "Who the letter is for."},
                "count": {"type": "integer", "minimum": 1, "default": 3},
                "tone": {"enum": ["warm", "formal"]},
                "urgent": {"type": "boolean"},
            },
        },
    }
    page.evaluate("(workflow) => window.openRun(workflow)", workflow)
    assert page.get_by_label("Count").input_value() == "3"
    page.get_by_label("Count").fill("0")
    page.get_by_role("button", name="Start run").click()

    name = page.get_by_label("Name")
    page.wait_for_function("() => document.querySelectorAll('.run-panel .sf-error').length === 2")
    assert name.get_attribute("aria-invalid") == "true"

    def alert_of(path: str) -> str:
        return page.locator(f'[data-path="{path}"]').get_by_role("alert").inner_text()

    assert alert_of("input.name") == "'name' is a required property"
    assert alert_of("input.count") == "0 is less than the minimum of 1"
    assert page.evaluate("window.started") == []
    page.screenshot(path=SCREENSHOTS / "builder-run-panel-1366.png", full_page=True)

    name.fill("Ada")
    page.get_by_label("Count").fill("2")
    page.get_by_label("Tone").select_option("formal")
    page.get_by_label("Urgent").check()
    page.get_by_role("button", name="Start run").click()
    page.wait_for_function("() => window.started.length === 1")
    assert posted[-1] == {"input": {"name": "Ada", "count": 2, "tone": "formal", "urgent": True}}
    assert page.evaluate("window.started[0].id") == RUN_ID
    assert page.locator(".run-panel .sf-error").count() == 0
    assert page.get_by_role("link", name="open it").get_attribute("href") == f"/dashboard/runs/{RUN_ID}/"

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    page.screenshot(path=SCREENSHOTS / "builder-run-panel-390.png", full_page=True)
    assert page.script_errors == []
