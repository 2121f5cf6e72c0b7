"""What operators use on runs: the run admin, the workflow admin's "Run now", and `manage.py run_workflow`.

A real Celery worker executes the runs, as in production.
"""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape

from accounts.access import personal_workspace
from accounts.models import User
from config import embedded
from tests.factories import UserFactory
from tests.workflows.engine.conftest import wait_for_run
from workflows.admin.workflow_forms import RUN_NOW_ONE_AT_A_TIME
from workflows.management.commands import run_workflow
from workflows.models import Run, RunEvent, StepRun, Workflow
from workflows.services.runs import ALREADY_FINISHED, NOT_RETRYABLE, NOT_RUNNABLE, run_cancel, run_trigger
from workflows.services.transfer import workflow_export
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/admin/workflows/run/"
WORKFLOWS = "/admin/workflows/workflow/"
TOPIC_SCHEMA = {"type": "object", "required": ["topic"], "properties": {"topic": {"type": "string"}}}
CHAIN = {
    "name": "Bee chain",
    "slug": "bee-chain",
    "input_schema": TOPIC_SCHEMA,
    "nodes": [
        {"key": "outline", "type": "text", "title": "Outline", "content": "Outline about {{ input.topic }}"},
        {"key": "summary", "type": "text", "title": "Summary", "content": "Summary of {{ nodes.outline.content }}"},
    ],
}
BROKEN = {
    "name": "Broken",
    "nodes": [
        {"key": "start", "type": "text", "content": "fine"},
        {"key": "broken", "type": "transform", "config": {"values": {"x": "{{ nodes.start.output.missing.deeper }}"}}},
    ],
}
WAIT = {
    "name": "Wait",
    "nodes": [
        {"key": "wait", "type": "delay", "config": {"seconds": 30}},
        {"key": "after", "type": "text", "content": "x"},
    ],
}


@pytest.fixture
def owner(db):
    return UserFactory()


@pytest.fixture
def root(db):
    """A superuser who is a member of no workspace: the admin must still serve them."""
    return User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1")


@pytest.fixture
def operator(client, root):
    client.force_login(root)
    return client


def workflow_of(owner, body: dict, **fields) -> Workflow:
    return workflow_create(actor=owner, workspace=personal_workspace(owner), data={**body, **fields})


def finished_run(workflow: Workflow, owner, run_input=None, trigger: str = "manual") -> Run:
    run, _ = run_trigger(workflow=workflow, input=run_input or {}, trigger=trigger, actor=owner)
    return wait_for_run(run.pk)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def act_on_runs(client, action: str, *runs: Run):
    return client.post(RUNS, {"action": action, "_selected_action": [str(run.pk) for run in runs]}, follow=True)


def _error_line(error: dict) -> str:
    return f"{error['type']}: {error['message']}"


def steps_of(run: Run) -> dict[str, StepRun]:
    return {step.node_key: step for step in run.steps.all()}


# --- the run admin ---------------------------------------------------------------------------------


def test_run_changelist_renders_with_search_and_each_filter(engine_worker, operator, owner):
    chain = workflow_of(owner, CHAIN)
    broken = workflow_of(owner, BROKEN)
    good = finished_run(chain, owner, {"topic": "bees"}, trigger="api")
    bad = finished_run(broken, owner)
    assert (good.status, bad.status) == ("succeeded", "failed")
    expected = {
        "": {good, bad},
        "?status__exact=succeeded": {good},
        "?status__exact=failed": {bad},
        "?status__exact=waiting": set(),
        f"?workflow__id__exact={broken.pk}": {bad},
        "?trigger__exact=api": {good},
        "?trigger__exact=manual": {bad},
        f"?q={str(good.pk)[:8]}": {good},  # the short id the list shows
        f"?q={bad.pk}": {bad},
        "?q=bee+chain": {good},
    }
    for query, runs in expected.items():
        answer = operator.get(RUNS + query)
        assert answer.status_code == 200, query
        assert set(answer.context["cl"].result_list) == runs, query
    page = operator.get(RUNS).content.decode()
    assert str(good.pk)[:8] in page and "Bee chain" in page


def test_run_changelist_runs_a_constant_number_of_queries(engine_worker, operator, owner):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert operator.get(RUNS).status_code == 200
        return len(captured)

    chain = workflow_of(owner, CHAIN)
    finished_run(chain, owner, {"topic": "a"})
    few = queries()
    for topic in "bcd":
        finished_run(workflow_of(UserFactory(), CHAIN), owner=None, run_input={"topic": topic})
    assert queries() == few


def test_run_change_page_shows_steps_and_events_read_only(engine_worker, operator, owner):
    run = finished_run(workflow_of(owner, BROKEN), owner)
    answer = operator.get(f"{RUNS}{run.pk}/change/")
    assert answer.status_code == 200
    [inline] = answer.context["inline_admin_formsets"]
    assert [form.original.node_key for form in inline] == ["start", "broken"]
    page = answer.content.decode()
    assert escape(steps_of(run)["broken"].error["message"][:40]) in page  # the failed step's error summary
    assert "run.failed" in page  # the events
    assert 'name="_save"' not in page
    assert not answer.context["has_change_permission"]


def test_runs_cannot_be_added_changed_or_deleted_in_the_admin(engine_worker, operator, owner):
    run = finished_run(workflow_of(owner, CHAIN), owner, {"topic": "bees"})
    assert operator.get(f"{RUNS}add/").status_code == 403
    assert operator.post(f"{RUNS}{run.pk}/change/", {"status": "failed"}).status_code == 403
    assert operator.get(f"{RUNS}{run.pk}/delete/").status_code == 403
    actions = [name for name, _ in operator.get(RUNS).context["action_form"].fields["action"].choices]
    assert actions == ["", "cancel", "retry", "pause", "pause_now", "resume"]
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_cancel_action_cancels_a_waiting_run(engine_worker, operator, owner):
    run, _ = run_trigger(workflow=workflow_of(owner, WAIT), input={}, trigger="manual", actor=owner)
    wait_for_run(run.pk, statuses={"waiting"})
    answer = act_on_runs(operator, "cancel", run)
    assert "Cancelled 1 run(s)." in messages_of(answer)
    run = wait_for_run(run.pk)
    assert run.status == "cancelled"
    assert {key: step.status for key, step in steps_of(run).items()} == {"wait": "cancelled", "after": "cancelled"}


def test_cancel_action_on_a_finished_run_reports_the_conflict_and_changes_nothing(engine_worker, operator, owner):
    run = finished_run(workflow_of(owner, CHAIN), owner, {"topic": "bees"})
    events = RunEvent.objects.filter(run=run).count()
    answer = act_on_runs(operator, "cancel", run)
    assert messages_of(answer) == [f"Run {run.pk}: {ALREADY_FINISHED.format(status='succeeded')}"]
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert RunEvent.objects.filter(run=run).count() == events


def test_retry_action_requeues_a_failed_run_and_refuses_a_succeeded_one(engine_worker, operator, owner):
    failed = finished_run(workflow_of(owner, BROKEN), owner)
    succeeded = finished_run(workflow_of(owner, CHAIN), owner, {"topic": "bees"})
    assert failed.status == "failed"
    assert steps_of(failed)["broken"].attempt == 1

    answer = act_on_runs(operator, "retry", failed, succeeded)
    assert set(messages_of(answer)) == {
        f"Run {succeeded.pk}: {NOT_RETRYABLE.format(status='succeeded')}",
        "Re-queued 1 run(s).",
    }
    failed = wait_for_run(failed.pk)
    assert failed.status == "failed"  # the template still names nothing that exists
    steps = steps_of(failed)
    assert (steps["start"].status, steps["start"].attempt) == ("succeeded", 1)  # kept, not re-run
    assert (steps["broken"].status, steps["broken"].attempt) == ("failed", 2)
    succeeded.refresh_from_db()
    assert succeeded.status == "succeeded"


# --- "Run now" on the workflow admin ---------------------------------------------------------------


def run_now(client, workflow: Workflow, **data):
    return client.post(WORKFLOWS, {"action": "run_now", "_selected_action": [str(workflow.pk)], **data})


def test_run_now_shows_a_form_prefilled_with_an_empty_object(operator, owner):
    answer = run_now(operator, workflow_of(owner, CHAIN))
    assert answer.status_code == 200
    assert "admin/workflows/workflow/run_now.html" in [template.name for template in answer.templates]
    form = answer.context["form"]
    assert form["input"].value() == "{}"
    page = answer.content.decode()
    assert "<textarea" in page and "{}</textarea>" in page
    assert "&quot;required&quot;: [" in page  # the input schema, as a reminder
    assert not Run.objects.exists()


def test_run_now_starts_a_manual_run_and_opens_it(engine_worker, operator, owner, root):
    workflow = workflow_of(owner, CHAIN)
    answer = run_now(operator, workflow, apply="yes", input='{"topic": "x"}')
    run = Run.objects.get()
    assert answer.status_code == 302
    assert answer.url == f"{RUNS}{run.pk}/change/"
    assert (run.workflow, run.input, run.trigger, run.created_by) == (workflow, {"topic": "x"}, "manual", root)
    page = operator.get(answer.url)
    assert f"Started run {run.pk} of Bee chain." in messages_of(page)
    assert wait_for_run(run.pk).status == "succeeded"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ('{"topic": ', "Enter a valid JSON."),
        ("{}", "'topic' is a required property"),
        ('{"topic": 3}', "topic: 3 is not of type 'string'"),
        ("[1, 2]", "The run input must be a JSON object."),
    ],
)
def test_run_now_shows_bad_input_on_the_form_and_starts_nothing(operator, owner, raw, error):
    answer = run_now(operator, workflow_of(owner, CHAIN), apply="yes", input=raw)
    assert answer.status_code == 200
    assert answer.context["form"].errors["input"] == [error]
    assert answer.context["form"]["input"].value() == raw  # kept for correcting
    assert not Run.objects.exists()


def test_run_now_on_a_paused_workflow_says_why_on_the_form(operator, owner):
    answer = run_now(operator, workflow_of(owner, CHAIN, status="paused"), apply="yes", input='{"topic": "x"}')
    assert answer.status_code == 200
    assert answer.context["form"].non_field_errors() == [NOT_RUNNABLE.format(status="paused")]
    assert not Run.objects.exists()


def test_run_now_takes_one_workflow_at_a_time(operator, owner):
    first, second = workflow_of(owner, CHAIN), workflow_of(owner, CHAIN, slug="other")
    answer = operator.post(
        WORKFLOWS, {"action": "run_now", "_selected_action": [str(first.pk), str(second.pk)]}, follow=True
    )
    assert messages_of(answer) == [RUN_NOW_ONE_AT_A_TIME]
    assert not Run.objects.exists()


# --- manage.py run_workflow ------------------------------------------------------------------------


@pytest.fixture
def no_embedded_worker(monkeypatch):
    """The test settings are the distributed mode: the command must leave the worker to engine_worker."""

    def refuse(*args, **kwargs):
        raise AssertionError("the command started the embedded worker in the distributed mode")

    monkeypatch.setattr(embedded, "start", refuse)


def command(*args) -> str:
    out = StringIO()
    call_command("run_workflow", *args, stdout=out)
    return out.getvalue()


def test_run_workflow_waits_printing_each_step_and_the_output(engine_worker, no_embedded_worker, owner):
    workflow = workflow_of(owner, CHAIN)
    output = command(str(workflow.pk), "--input", '{"topic": "bees"}', "--wait")
    lines = output.splitlines()
    run = Run.objects.get()
    assert lines[0] == f"Running as {owner.email} (an owner of workspace {workflow.workspace.name})."
    assert lines[1] == f"Run {run.pk} running"  # runs start in the transaction that creates them
    assert lines[2].split() == ["outline", "succeeded", "attempt", "1", *lines[2].split()[4:]]
    assert lines[2].endswith(" ms")
    assert lines[3].split()[:4] == ["summary", "succeeded", "attempt", "1"]
    assert lines[4].startswith(f"Run {run.pk} succeeded in ")
    assert json.loads("\n".join(lines[5:])) == {
        "summary": {"title": "Summary", "content": "Summary of Outline about bees", "format": "markdown"}
    }
    assert (run.status, run.trigger, run.created_by) == ("succeeded", "manual", owner)


def test_run_workflow_by_slug_as_a_named_user_without_waiting(engine_worker, no_embedded_worker, owner, root):
    workflow_of(owner, CHAIN)
    output = command("bee-chain", "--input", '{"topic": "x"}', "--as", owner.email.upper())
    run = Run.objects.get()
    assert output.splitlines() == [f"Running as {owner.email} (given with --as).", f"Run {run.pk} running"]
    assert run.created_by == owner
    assert wait_for_run(run.pk).status == "succeeded"


def test_run_workflow_runs_as_the_first_superuser_by_default(engine_worker, no_embedded_worker, owner, root):
    workflow = workflow_of(owner, CHAIN)
    output = command(str(workflow.pk), "--input", '{"topic": "x"}', "--wait")
    assert output.startswith("Running as root@example.com (the first superuser).")
    assert Run.objects.get().created_by == root


def test_run_workflow_exits_1_when_the_run_fails(engine_worker, no_embedded_worker, owner):
    workflow = workflow_of(owner, BROKEN)
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("run_workflow", str(workflow.pk), "--wait", stdout=out)
    run = Run.objects.get()
    assert str(raised.value).startswith(f"Run {run.pk} failed: Step broken failed: ")
    assert raised.value.returncode == 1
    lines = out.getvalue().splitlines()
    assert lines[2].split()[:4] == ["start", "succeeded", "attempt", "1"]
    assert lines[3].split()[:4] == ["broken", "failed", "attempt", "1"]
    assert lines[4].strip() and lines[4].startswith("    ")  # the step's error, under its line
    assert lines[4].strip() == _error_line(steps_of(run)["broken"].error).splitlines()[0]
    assert lines[5].startswith(f"Run {run.pk} failed after ")


def test_run_workflow_gives_up_after_the_timeout_and_leaves_the_run_going(engine_worker, no_embedded_worker, owner):
    workflow = workflow_of(owner, WAIT)
    with pytest.raises(CommandError, match=r"Stopped waiting after 0.5 s: run .* is still waiting"):
        command(str(workflow.pk), "--wait", "--timeout", "0.5")
    run = Run.objects.get()
    assert run.status in ("running", "waiting")
    run_cancel(run=run, actor=owner)


def test_run_workflow_imports_an_export_file_then_runs_it(engine_worker, no_embedded_worker, owner, tmp_path):
    source = workflow_of(owner, CHAIN)
    path = tmp_path / "bees.json"
    path.write_text(json.dumps([workflow_export(workflow=source)]))  # as export_workflows writes it
    other = UserFactory()
    workspace = personal_workspace(other)

    output = command(str(path), "--workspace", str(workspace.pk), "--input", '{"topic": "wax"}', "--wait")

    imported = Workflow.objects.get(workspace=workspace)
    assert (imported.name, imported.slug, imported.created_by) == ("Bee chain", "bee-chain", other)
    assert f"Imported {path} as workflow {imported.pk} (Bee chain)." in output
    run = Run.objects.get()
    assert (run.workflow, run.status, run.created_by) == (imported, "succeeded", other)
    assert run.output["summary"]["content"] == "Summary of Outline about wax"


def test_run_workflow_imports_into_the_personal_workspace_of_the_user_named(
    engine_worker, no_embedded_worker, owner, tmp_path
):
    path = tmp_path / "bees.json"
    path.write_text(json.dumps(workflow_export(workflow=workflow_of(owner, CHAIN))))
    other = UserFactory()
    command(str(path), "--as", other.email, "--input", '{"topic": "wax"}', "--wait")
    assert Run.objects.get().workflow.workspace == personal_workspace(other)


def test_run_workflow_asks_for_a_workspace_when_the_importer_has_no_personal_one(owner, root, tmp_path):
    path = tmp_path / "bees.json"
    path.write_text(json.dumps(workflow_export(workflow=workflow_of(owner, CHAIN))))
    with pytest.raises(CommandError) as raised:
        command(str(path))  # as root, who belongs to no workspace
    assert str(raised.value) == run_workflow.NO_PERSONAL_WORKSPACE.format(email=root.email)
    assert Workflow.objects.count() == 1


@pytest.mark.parametrize(
    ("document", "run_input", "message"),
    [
        ({"status": "paused"}, "{}", "Cannot start Bee chain: " + NOT_RUNNABLE.format(status="paused")),
        ({}, '{"topic": 3}', "The input was rejected; nothing was started:\n  input.topic: 3 is not of type 'string'"),
        ({"nodes": [{"key": "x", "type": "nope"}]}, "{}", "Nothing imported; "),
        ({"format": "other/1"}, "{}", "Expected an export document (dwc-workflow/1)."),
    ],
)
def test_run_workflow_leaves_nothing_behind_when_an_imported_workflow_cannot_run(
    owner, tmp_path, document, run_input, message
):
    path = tmp_path / "bees.json"
    path.write_text(json.dumps({**workflow_export(workflow=workflow_of(owner, CHAIN)), **document}))
    other = UserFactory()
    workflows = Workflow.objects.count()
    with pytest.raises(CommandError) as raised:
        command(str(path), "--as", other.email, "--input", run_input)
    assert message in str(raised.value)
    assert Workflow.objects.count() == workflows
    assert not Run.objects.exists()


def test_run_workflow_points_at_the_existing_workflow_when_the_import_slug_is_taken(owner, tmp_path):
    path = tmp_path / "bees.json"
    path.write_text(json.dumps(workflow_export(workflow=workflow_of(owner, CHAIN))))
    with pytest.raises(CommandError, match="run it with: run_workflow bee-chain"):
        command(str(path), "--as", owner.email)


def test_run_workflow_bad_arguments_say_what_to_fix(engine_worker, owner, tmp_path):
    workflow = workflow_of(owner, CHAIN)
    paused = workflow_of(owner, CHAIN, slug="paused", status="paused")
    twin_owner = UserFactory()
    workflow_of(twin_owner, CHAIN)  # the same slug in another workspace
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "two.json").write_text(json.dumps([workflow_export(workflow=workflow)] * 2))
    (tmp_path / "good.json").write_text(json.dumps(workflow_export(workflow=workflow)))
    missing_id = "00000000-0000-0000-0000-000000000000"
    cases = {
        (missing_id,): f"No workflow has the id or slug '{missing_id}'.",
        ("no-such-slug",): "No workflow has the id or slug 'no-such-slug'.",
        ("bee-chain",): "The slug 'bee-chain' is used in 2 workspaces (",
        (str(workflow.pk), "--input", "{topic: x}"): "--input is not valid JSON: ",
        (str(workflow.pk), "--input", "{}"): "input: 'topic' is a required property",
        (str(workflow.pk), "--input", '"bees"'): "input: The run input must be a JSON object.",
        (str(paused.pk),): "Cannot start Bee chain: " + NOT_RUNNABLE.format(status="paused"),
        (str(workflow.pk), "--as", "nobody@example.com"): "No user with the email nobody@example.com.",
        (str(workflow.pk), "--workspace", "nope"): "No such workspace: nope.",
        (str(workflow.pk), "--workspace", str(personal_workspace(twin_owner).pk)): "No workflow has the id or slug",
        (str(workflow.pk), "--as", twin_owner.email): f"{twin_owner.email} may not run workflows in workspace",
        (str(workflow.pk), "--wait", "--timeout", "0"): run_workflow.BAD_TIMEOUT,
        (str(tmp_path / "missing.json"),): f"Cannot read {tmp_path / 'missing.json'}: No such file or directory.",
        (str(tmp_path),): f"Cannot read {tmp_path}: Is a directory.",
        (str(tmp_path / "bad.json"),): f"{tmp_path / 'bad.json'} is not valid JSON: ",
        (str(tmp_path / "two.json"),): f"{tmp_path / 'two.json'} holds 2 workflows; run_workflow runs one",
        (str(tmp_path / "good.json"),): run_workflow.NOWHERE_TO_IMPORT,  # no superuser, no --as, no --workspace
    }
    for args, message in cases.items():
        with pytest.raises(CommandError) as raised:
            command(*args)
        assert message in str(raised.value), args
    assert not Run.objects.exists()
    assert command("bee-chain", "--workspace", str(workflow.workspace_id), "--input", '{"topic": "x"}')
    assert wait_for_run(Run.objects.get().pk).status == "succeeded"


def test_run_workflow_hosts_the_worker_in_the_embedded_mode(engine_worker, owner, settings, monkeypatch):
    # engine_worker does the work here; what is checked is that the command starts and stops its own.
    calls = []
    monkeypatch.setattr(embedded, "start", lambda: calls.append("start"))
    monkeypatch.setattr(embedded, "stop", lambda: calls.append("stop"))
    settings.DWC_MODE = "embedded"
    workflow = workflow_of(owner, CHAIN)

    command(str(workflow.pk), "--input", '{"topic": "x"}', "--wait")
    assert calls == ["start", "stop"]
    with pytest.raises(CommandError):
        command(str(workflow.pk), "--input", "{}", "--wait")
    assert calls == ["start", "stop"] * 2  # stopped when the run could not start, too

    output = command(str(workflow.pk), "--input", '{"topic": "x"}')
    assert calls == ["start", "stop"] * 2  # without --wait the server's worker will run it
    assert run_workflow.EMBEDDED_NO_WAIT in output
    for run in Run.objects.all():
        wait_for_run(run.pk)
