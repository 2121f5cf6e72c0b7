"""The visual builder in a real browser (docs/builder.md): the canvas, saving through the API with
If-Match, errors pinned to nodes, undo/redo, drafts across reloads, read-only viewers, conflicts and
export. The node forms are builder/node-panel.js's, tested with it."""

import json
import re

import pytest

from accounts.access import personal_workspace
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.workflows.dashboard.test_browser import SCREENSHOTS, browser, needs_chromium, server, watch_for_script_errors
from workflows.services.workflows import workflow_create

__all__ = ["browser", "server"]  # fixtures

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]

CHAIN = {
    "name": "Builder chain",
    "nodes": [
        {"key": "intro", "type": "text", "content": "Hello", "position": {"x": 40, "y": 40}},
        {"key": "outro", "type": "text", "content": "Bye", "position": {"x": 40, "y": 200}, "depends_on": ["intro"]},
    ],
}


@pytest.fixture
def editor(transactional_db):
    return UserFactory(email="builder@example.com")


@pytest.fixture
def workflow(editor):
    return workflow_create(actor=editor, workspace=personal_workspace(editor), data=CHAIN)


@pytest.fixture
def viewer(workflow):
    user = UserFactory(email="viewer@example.com")
    MembershipFactory(workspace=workflow.workspace, user=user, role="viewer")
    return user


def log_in(context, server, user):
    page = context.new_page()
    page.goto(f"{server}/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/dashboard/")
    return page


def open_builder(page, server, workflow_id, nodes):
    page.goto(f"{server}/dashboard/workflows/{workflow_id}/edit/")
    page.wait_for_function(f"() => document.querySelectorAll('#canvas .drawflow-node').length === {nodes}")


def node(page, key):
    return page.locator(f'#canvas .drawflow-node[data-key="{key}"]')


def new_workflow_by_drag_and_drop(page, name, drops):
    """From the dashboard: a new workflow `name`, then each (type, (x, y)) of `drops` dragged from the
    palette onto the canvas. Returns the workflow's id."""
    page.get_by_role("link", name="New workflow").click()
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create and edit").click()
    page.wait_for_url(re.compile(r"/dashboard/workflows/[0-9a-f-]{36}/edit/$"))
    workflow_id = page.url.rstrip("/").split("/")[-2]
    page.wait_for_selector(f'#palette .palette-item[data-type="{drops[0][0]}"]')
    canvas = page.locator("#canvas")
    for type_, (x, y) in drops:
        page.locator(f'#palette .palette-item[data-type="{type_}"]').drag_to(canvas, target_position={"x": x, "y": y})
    page.wait_for_function(f"() => document.querySelectorAll('#canvas .drawflow-node').length === {len(drops)}")
    return workflow_id


def connect(page, source, target, port=1):
    start = node(page, source).locator(f".output_{port}").bounding_box()
    end = node(page, target).locator(".input_1").bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + 4, end["y"] + 4, steps=5)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=2)
    page.mouse.up()


def api_get(page, path):
    return page.evaluate(f"async () => (await fetch('/api/v3/{path}')).json()")


def saved(page):
    page.get_by_role("button", name="Save").click()
    page.wait_for_function("() => /^Saved as version/.test(document.getElementById('builder-banner').textContent)")


def test_a_condition_workflow_is_built_by_drag_and_drop_and_saved_with_its_branches(server, editor, browser):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = log_in(context, server, editor)
    errors = []
    watch_for_script_errors(page, errors)

    drops = [("text", (300, 40)), ("condition", (300, 200)), ("text", (100, 400)), ("text", (500, 400))]
    workflow_id = new_workflow_by_drag_and_drop(page, "Drag and drop", drops)
    assert [node(page, key).count() for key in ["text", "condition", "text_2", "text_3"]] == [1, 1, 1, 1]
    assert node(page, "condition").locator(".output_1").get_attribute("data-branch") == "true"
    assert node(page, "condition").locator(".output_2").get_attribute("data-branch") == "false"

    connect(page, "text", "condition")
    connect(page, "condition", "text_2", port=1)
    connect(page, "condition", "text_3", port=2)
    assert page.locator('#canvas .connection[data-when="true"]').count() == 1
    assert page.locator('#canvas .connection[data-when="false"]').count() == 1
    page.screenshot(path=SCREENSHOTS / "builder-1366.png", full_page=True)

    saved(page)
    stored = api_get(page, f"workflows/{workflow_id}")
    depends = {item["key"]: item["depends_on"] for item in stored["nodes"]}
    assert depends == {
        "text": [],
        "condition": ["text"],
        "text_2": [{"node": "condition", "when": "true"}],
        "text_3": [{"node": "condition", "when": "false"}],
    }
    assert all(item["position"]["y"] > 0 for item in stored["nodes"])
    assert stored["version"] == 2
    assert page.locator("#version-label").inner_text() == "Version 2"
    page.get_by_role("button", name="Auto-layout").click()
    layered = {key: node(page, key).bounding_box()["y"] for key in ["text", "condition", "text_2", "text_3"]}
    assert layered["text"] < layered["condition"] < layered["text_2"] == layered["text_3"]
    context.close()
    assert errors == []


def test_undo_redo_and_unsaved_changes_survive_a_reload(server, editor, workflow, browser):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = log_in(context, server, editor)
    open_builder(page, server, workflow.pk, 2)
    page.locator('#palette .palette-item[data-type="delay"]').click()
    page.wait_for_function("() => document.querySelectorAll('#canvas .drawflow-node').length === 3")
    assert page.locator("#dirty-mark").is_visible()

    page.keyboard.press("Control+z")
    assert node(page, "delay").count() == 0
    page.get_by_role("button", name="Redo").click()
    assert node(page, "delay").count() == 1

    node(page, "delay").click()
    page.keyboard.press("Control+c")
    page.locator("#canvas").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+v")
    assert node(page, "delay_2").count() == 1

    page.reload()
    page.wait_for_function("() => document.querySelectorAll('#canvas .drawflow-node').length === 2")
    page.get_by_role("button", name="Restore them").click()
    assert node(page, "delay").count() == 1 and node(page, "delay_2").count() == 1
    context.close()


def test_a_server_validation_error_is_pinned_to_its_node(server, editor, workflow, browser, tmp_path):
    document = {
        "format": "dwc-workflow/1",
        "name": "Broken",
        "nodes": [
            {"key": "fine", "type": "text", "content": "ok"},
            {"key": "broken", "type": "text", "content": "Hello {{ input.name", "depends_on": ["fine"]},
        ],
    }
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(document))
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = log_in(context, server, editor)
    open_builder(page, server, workflow.pk, 2)
    page.locator("#import-file").set_input_files(str(path))
    page.wait_for_selector('#canvas .drawflow-node[data-key="broken"]')
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("#canvas .drawflow-node.has-errors")
    assert node(page, "broken").get_attribute("class").count("has-errors") == 1
    assert "has-errors" not in node(page, "fine").get_attribute("class")
    assert page.locator("#builder-error").inner_text().startswith("broken: ")
    assert api_get(page, f"workflows/{workflow.pk}")["version"] == 1  # nothing half-saved
    context.close()


def test_a_viewer_gets_the_canvas_read_only(server, workflow, viewer, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = log_in(context, server, viewer)
    open_builder(page, server, workflow.pk, 2)
    assert page.locator("#palette").count() == 0
    assert page.get_by_role("button", name="Save").count() == 0
    assert page.locator("#canvas").get_attribute("class").count("read-only") == 1
    before = node(page, "intro").bounding_box()
    node(page, "intro").hover()
    page.mouse.down()
    page.mouse.move(before["x"] + 150, before["y"] + 150, steps=4)
    page.mouse.up()
    assert page.locator("#canvas .drawflow-node").count() == 2
    assert api_get(page, f"workflows/{workflow.pk}")["nodes"][0]["position"] == {"x": 40, "y": 40}
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    page.screenshot(path=SCREENSHOTS / "builder-viewer-390.png", full_page=True)
    context.close()


def test_a_save_after_someone_elses_shows_the_conflict_and_keeps_the_edits(server, editor, workflow, browser):
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    first = log_in(context, server, editor)
    second = context.new_page()
    for page in (first, second):
        open_builder(page, server, workflow.pk, 2)
    second.locator('#palette .palette-item[data-type="delay"]').click()
    saved(second)

    first.locator('#palette .palette-item[data-type="transform"]').click()
    first.get_by_role("button", name="Save").click()
    first.wait_for_selector("#builder-banner >> text=Someone saved version 2 meanwhile")
    with first.expect_download() as download:
        first.get_by_role("button", name="Download my changes").click()
    kept = json.loads(download.value.path().read_text())
    assert [item["key"] for item in kept["nodes"]] == ["intro", "outro", "transform"]
    first.get_by_role("button", name="Load version 2").click()
    first.wait_for_selector('#canvas .drawflow-node[data-key="delay"]')
    assert first.locator("#canvas .drawflow-node").count() == 3
    assert first.locator("#version-label").inner_text() == "Version 2"
    context.close()


def test_export_downloads_the_workflow_document_and_the_page_fits_a_phone(server, editor, workflow, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True)
    page = log_in(context, server, editor)
    open_builder(page, server, workflow.pk, 2)
    with page.expect_download() as download:
        page.get_by_role("button", name="Export").click()
    document = json.loads(download.value.path().read_text())
    assert document["format"] == "dwc-workflow/1"
    assert [item["key"] for item in document["nodes"]] == ["intro", "outro"]
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    canvas, side = page.locator("#canvas").bounding_box(), page.locator("#side-panel").bounding_box()
    assert side["y"] >= canvas["y"] + canvas["height"]
    page.screenshot(path=SCREENSHOTS / "builder-390.png", full_page=True)
    context.close()


def test_shift_click_selects_several_nodes_that_move_together_and_an_old_version_opens_read_only(
    server, editor, workflow, browser
):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = log_in(context, server, editor)
    open_builder(page, server, workflow.pk, 2)
    node(page, "intro").click()
    node(page, "outro").click(modifiers=["Shift"])
    assert page.locator("#canvas .drawflow-node.multi-selected").count() == 2
    before = {key: node(page, key).bounding_box() for key in ["intro", "outro"]}
    box = before["intro"]
    page.mouse.move(box["x"] + 20, box["y"] + 10)
    page.mouse.down()
    page.mouse.move(box["x"] + 120, box["y"] + 60, steps=6)
    page.mouse.up()
    after = {key: node(page, key).bounding_box() for key in ["intro", "outro"]}
    moved = [(after[key]["x"] - before[key]["x"], after[key]["y"] - before[key]["y"]) for key in ["intro", "outro"]]
    assert moved[0][0] > 50 and moved[0][1] > 25
    assert moved[1] == pytest.approx(moved[0], abs=2)
    saved(page)

    page.select_option("#versions", "1")
    page.wait_for_selector("#builder-banner >> text=Version 1, read-only")
    assert page.locator("#canvas").get_attribute("class").count("read-only") == 1
    assert node(page, "intro").bounding_box()["x"] == pytest.approx(before["intro"]["x"], abs=2)
    page.get_by_role("button", name="Restore this version").click()
    page.wait_for_selector("#builder-banner >> text=Version 1 restored.")
    assert page.locator("#version-label").inner_text() == "Version 3"
    context.close()


@pytest.fixture
def other(editor, workflow):
    """Made before the browser starts, as every fixture here: no ORM calls while Playwright's loop runs."""
    return workflow_create(
        actor=editor, workspace=workflow.workspace, data={"name": "Other", "nodes": [{"key": "solo", "content": "x"}]}
    )


def test_delete_zoom_paste_into_another_workflow_and_the_question_before_leaving(
    server, editor, workflow, other, browser
):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = log_in(context, server, editor)
    open_builder(page, server, workflow.pk, 2)

    # Delete: the button removes the selected node and its edge; the Delete key the next one.
    node(page, "outro").locator(".node-title").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    assert node(page, "outro").count() == 0
    page.keyboard.press("Control+z")
    assert node(page, "outro").count() == 1

    # Zoom changes the canvas' scale; 100 % puts it back.
    scale = "() => getComputedStyle(document.querySelector('#canvas .drawflow')).transform"
    before = page.evaluate(scale)
    page.get_by_role("button", name="Zoom in").click()
    assert page.evaluate(scale) != before
    page.get_by_role("button", name="100 %").click()

    # Copied here, pasted into another workflow's builder.
    node(page, "intro").locator(".node-title").click()
    page.keyboard.press("Control+c")
    # Leaving with unsaved changes asks first.
    page.locator('#palette .palette-item[data-type="delay"]').click()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.accept()))
    open_builder(page, server, other.pk, 1)
    assert dialogs == ["beforeunload"]
    page.locator("#canvas").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+v")
    assert node(page, "intro").count() == 1
    saved(page)
    assert {item["key"] for item in api_get(page, f"workflows/{other.pk}")["nodes"]} == {"solo", "intro"}
    context.close()
