"""The visual builder end to end, in the real product (docs/builder.md): a workflow built from scratch by
drag and drop, configured through the generated node forms in the side panel, saved, refused with the
error on the field that caused it, fixed, run from the editor's Run panel (the embedded worker really
runs it) and followed on the canvas; undo/redo and drafts across a form edit."""

import pytest

from accounts.access import personal_workspace
from tests.factories import UserFactory
from tests.workflows.dashboard.test_browser import SCREENSHOTS, browser, needs_chromium, server, watch_for_script_errors
from tests.workflows.dashboard.test_builder_browser import (
    api_get,
    connect,
    log_in,
    new_workflow_by_drag_and_drop,
    node,
    open_builder,
    saved,
)
from workflows.services.workflows import workflow_create

__all__ = ["browser", "server"]  # fixtures

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]

PROMPT = "Write about the visual builder in a real browser."
DRAFT_PREFIX = "dwc-builder-draft:"
RUN_WITHIN_MS = 30000


@pytest.fixture
def editor(transactional_db):
    return UserFactory(email="end-to-end@example.com")


@pytest.fixture
def letter(editor):
    data = {
        "name": "Letter",
        "nodes": [
            {"key": "intro", "type": "text", "content": "Hello", "position": {"x": 40, "y": 40}},
            {
                "key": "outro",
                "type": "text",
                "content": "Bye",
                "position": {"x": 40, "y": 200},
                "depends_on": ["intro"],
            },
        ],
    }
    return workflow_create(actor=editor, workspace=personal_workspace(editor), data=data)


def panel(page, node_type):
    return page.get_by_role("region", name=f"{node_type.capitalize()} node settings")


def open_panel(page, key, node_type):
    node(page, key).locator(".node-title").click()
    form = panel(page, node_type)
    form.wait_for()
    assert form.get_by_role("textbox", name="Key", exact=True).input_value() == key
    return form


def wait_for_draft(page, text):
    """The form reports typing after a pause; the draft in localStorage shows when it has."""
    page.wait_for_function(
        """([prefix, text]) => Object.keys(localStorage).some(
            (name) => name.startsWith(prefix) && localStorage.getItem(name).includes(text))""",
        arg=[DRAFT_PREFIX, text],
    )


def complete_template(panel, label, typed, offered):
    """Empty the template field `label` of `panel`, type `typed`, check that the completion list offers
    exactly `offered`, take the first and close the expression; returns the field."""
    field = panel.get_by_label(label)
    field.fill("")
    field.press_sequentially(typed)
    assert panel.get_by_role("listbox").get_by_role("option").all_inner_texts() == offered
    field.press("Enter")
    field.press_sequentially(" }}")
    return field


def stored_nodes(page, workflow_id):
    return {item["key"]: item for item in api_get(page, f"workflows/{workflow_id}")["nodes"]}


def test_a_branching_workflow_is_built_configured_saved_fixed_and_run_in_the_editor(server, editor, browser):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = log_in(context, server, editor)
    errors = []
    watch_for_script_errors(page, errors)

    # 1. From scratch, by drag and drop: document → condition, true → text, false → text_2.
    drops = [("document", (180, 30)), ("condition", (180, 190)), ("text", (40, 380)), ("text", (330, 380))]
    workflow_id = new_workflow_by_drag_and_drop(page, "Builder end to end", drops)
    connect(page, "document", "condition")
    connect(page, "condition", "text", port=1)
    connect(page, "condition", "text_2", port=2)
    assert page.locator('#canvas .connection[data-when="true"]').get_attribute("data-target") == "text"
    assert page.locator('#canvas .connection[data-when="false"]').get_attribute("data-target") == "text_2"

    # 2. Each node through its generated form in the side panel.
    document = open_panel(page, "document", "document")
    document.get_by_label("Prompt").fill(PROMPT)
    document.get_by_label("Provider").select_option(label="template")
    document.get_by_label("Model").fill("")
    wait_for_draft(page, PROMPT)

    condition = open_panel(page, "condition", "condition")
    assert panel(page, "document").count() == 0  # one node's form at a time
    expression = condition.get_by_label("Expression")
    expression.fill("")
    expression.press_sequentially("nodes.doc")
    names = condition.get_by_role("listbox")
    assert names.get_by_role("option").all_inner_texts() == [
        "nodes.document.output",
        "nodes.document.content",
        "nodes.document.title",
    ]
    expression.press("ArrowDown")
    expression.press("Enter")
    expression.press_sequentially(" | length > 5")
    assert expression.input_value() == "nodes.document.content | length > 5"
    wait_for_draft(page, "length > 5")

    text = open_panel(page, "text", "text")
    content = complete_template(text, "Content", "{{ nodes.document.c", ["nodes.document.content"])
    assert content.input_value() == "{{ nodes.document.content }}"
    wait_for_draft(page, "{{ nodes.document.content }}")

    short = open_panel(page, "text_2", "text")
    short.get_by_label("Content").fill("Too short: {{ nodes.document.content }}")
    wait_for_draft(page, "Too short")

    # 3. Save; then a template error, saved at once with ctrl+s from the field itself.
    saved(page)
    assert page.locator("#version-label").inner_text() == "Version 2"
    nodes = stored_nodes(page, workflow_id)
    assert nodes["document"]["prompt"] == PROMPT
    assert nodes["document"]["config"]["provider"] == "template"
    assert "model" not in nodes["document"]["config"]
    assert nodes["condition"]["config"] == {"expression": "nodes.document.content | length > 5"}
    assert nodes["text"]["content"] == "{{ nodes.document.content }}"
    assert nodes["text_2"]["depends_on"] == [{"node": "condition", "when": "false"}]

    short = open_panel(page, "text_2", "text")
    broken = short.get_by_label("Content")
    broken.fill("Too short: {{ nodes.document.content")
    broken.press("Control+s")
    page.wait_for_selector("#canvas .drawflow-node.has-errors")
    assert page.locator("#builder-banner").is_hidden()
    assert broken.get_attribute("aria-invalid") == "true"
    message = short.locator('[data-path="content"]').get_by_role("alert")
    assert message.inner_text() != ""
    assert page.locator(f"#{broken.get_attribute('aria-describedby').split()[-1]}").inner_text() == message.inner_text()
    assert "has-errors" in node(page, "text_2").get_attribute("class")
    assert [
        key for key in ["document", "condition", "text"] if "has-errors" in node(page, key).get_attribute("class")
    ] == []
    assert page.locator("#builder-error").inner_text().startswith("text_2: ")
    assert api_get(page, f"workflows/{workflow_id}")["version"] == 2  # nothing half-saved
    assert stored_nodes(page, workflow_id)["text_2"]["content"] == "Too short: {{ nodes.document.content }}"
    page.screenshot(path=SCREENSHOTS / "builder-e2e-error-1366.png", full_page=True)

    broken.fill("Too short: {{ nodes.document.content }}")
    assert "has-errors" in node(page, "text_2").get_attribute("class")  # until a save says otherwise
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("#builder-banner >> text=Saved as version 3.")
    assert page.locator("#version-label").inner_text() == "Version 3"
    assert api_get(page, f"workflows/{workflow_id}")["version"] == 3
    assert page.locator("#canvas .drawflow-node.has-errors").count() == 0
    assert short.get_by_label("Content").get_attribute("aria-invalid") is None
    assert short.locator(".sf-error").count() == 0
    assert page.locator("#builder-error").is_hidden()

    # 4. Run it from the editor and watch it on the canvas.
    page.get_by_role("button", name="Run", exact=True).click()
    run_form = page.get_by_role("form", name="Run Builder end to end")
    run_form.get_by_role("button", name="Start run").click()
    page.wait_for_function(
        """() => {
            const status = (key) => document.querySelector(`#canvas .drawflow-node[data-key="${key}"]`).dataset.status;
            return ["document", "condition", "text"].every((key) => status(key) === "succeeded")
                && status("text_2") === "skipped";
        }""",
        timeout=RUN_WITHIN_MS,
    )
    run_link = run_form.get_by_role("link", name="open it").get_attribute("href")
    run_id = run_link.rstrip("/").split("/")[-1]
    run = api_get(page, f"runs/{run_id}")
    assert run["status"] == "succeeded"
    assert run["version"] == 3
    steps = {step["key"]: step for step in api_get(page, f"runs/{run_id}/steps")}
    assert steps["text"]["output"]["content"] == PROMPT
    assert steps["condition"]["output"] == {"result": True}
    assert steps["text_2"]["status"] == "skipped"
    page.screenshot(path=SCREENSHOTS / "builder-e2e-run-1366.png", full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    assert node(page, "text").get_attribute("data-status") == "succeeded"
    page.screenshot(path=SCREENSHOTS / "builder-e2e-run-390.png", full_page=True)
    context.close()
    assert errors == []


def test_a_form_edit_is_one_undo_step_survives_a_reload_and_keeps_the_nodes_place_and_edges(
    server, editor, letter, browser
):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = log_in(context, server, editor)
    errors = []
    watch_for_script_errors(page, errors)
    open_builder(page, server, letter.pk, 2)

    form = open_panel(page, "intro", "text")
    content = form.get_by_label("Content")
    content.press("End")
    content.press_sequentially(", {{ run.id }}!")
    wait_for_draft(page, "Hello, {{ run.id }}!")
    assert page.locator("#dirty-mark").is_visible()

    page.get_by_role("button", name="Undo").click()
    assert panel(page, "text").get_by_label("Content").input_value() == "Hello"  # the whole edit, at once
    assert page.locator("#dirty-mark").is_hidden()
    assert page.get_by_role("button", name="Undo").is_disabled()
    page.locator("#canvas").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+Shift+z")
    form = open_panel(page, "intro", "text")
    assert form.get_by_label("Content").input_value() == "Hello, {{ run.id }}!"

    page.reload()
    open_builder(page, server, letter.pk, 2)
    assert open_panel(page, "intro", "text").get_by_label("Content").input_value() == "Hello"
    page.get_by_role("button", name="Restore them").click()
    assert panel(page, "text").get_by_label("Content").input_value() == "Hello, {{ run.id }}!"
    saved(page)
    assert stored_nodes(page, letter.pk)["intro"]["content"] == "Hello, {{ run.id }}!"
    assert page.evaluate(f"Object.keys(localStorage).filter((name) => name.startsWith('{DRAFT_PREFIX}'))") == []

    # The open form follows the version shown: version 1's node, read-only; then the current one again.
    page.select_option("#versions", "1")
    page.wait_for_selector("#builder-banner >> text=Version 1, read-only")
    old_content = panel(page, "text").get_by_label("Content")
    assert old_content.input_value() == "Hello"
    assert old_content.is_disabled()
    page.get_by_role("button", name="Back to editing").click()
    assert panel(page, "text").get_by_label("Content").input_value() == "Hello, {{ run.id }}!"
    assert panel(page, "text").get_by_label("Content").is_enabled()

    # With its form open, the node is moved on the canvas, then renamed in the form: the form keeps the
    # new place, and the edge from it follows the new key.
    box = node(page, "intro").bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 10)
    page.mouse.down()
    page.mouse.move(box["x"] + 220, box["y"] + 10, steps=5)
    page.mouse.up()
    key = panel(page, "text").get_by_role("textbox", name="Key", exact=True)
    key.fill("greeting")
    wait_for_draft(page, '"greeting"')
    assert key.evaluate("(element) => element === document.activeElement")  # the form stayed open
    assert node(page, "greeting").count() == 1
    assert page.locator('#canvas .connection[data-source="greeting"]').get_attribute("data-target") == "outro"
    saved(page)
    nodes = stored_nodes(page, letter.pk)
    assert nodes["outro"]["depends_on"] == ["greeting"]
    assert nodes["greeting"]["position"]["x"] > 200
    context.close()
    assert errors == []


def test_the_workflows_own_fields_give_the_run_form_and_the_templates_their_input(server, editor, letter, browser):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = log_in(context, server, editor)
    open_builder(page, server, letter.pk, 2)
    errors = []
    watch_for_script_errors(page, errors)

    # No node selected: the workflow's own form, the input schema among its fields.
    settings = page.get_by_role("region", name="Workflow settings")
    settings.wait_for()
    schema = settings.get_by_label("Input schema")
    schema.fill('{"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}')
    wait_for_draft(page, '"topic"')

    intro = open_panel(page, "intro", "text")
    complete_template(intro, "Content", "{{ input.t", ["input.topic"])
    wait_for_draft(page, "{{ input.topic }}")
    saved(page)
    stored = api_get(page, f"workflows/{letter.pk}")
    assert stored["input_schema"]["properties"] == {"topic": {"type": "string"}}
    assert stored["nodes"][0]["content"] == "{{ input.topic }}"

    # A bad value for one of the workflow's fields is pinned on it (a click on the empty canvas
    # leaves the node for the workflow's form).
    box = page.locator("#canvas").bounding_box()
    page.locator("#canvas").click(position={"x": box["width"] - 30, "y": box["height"] - 30})
    settings.wait_for()
    settings.get_by_role("spinbutton", name="Timeout").fill("0")
    page.keyboard.press("Control+s")
    timeout_field = settings.locator('[data-path="settings.timeout"]')
    timeout_field.get_by_role("alert").wait_for()
    assert api_get(page, f"workflows/{letter.pk}")["version"] == stored["version"]

    # The Run form asks for what the schema names.
    settings.get_by_role("spinbutton", name="Timeout").fill("")
    page.get_by_role("button", name="Run", exact=True).click()
    run_form = page.get_by_role("form", name="Run Letter")
    run_form.get_by_label("Topic").wait_for()
    assert errors == []
