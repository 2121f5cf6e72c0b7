"""Event triggers end to end: a real worker runs the source run, publishes its end and fires the triggers."""

import itertools

import pytest
from django.conf import settings as django_settings

from accounts.access import personal_workspace
from accounts.models import Membership, User
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory
from tests.processes import wait_until
from tests.workflows.engine.conftest import wait_for_run
from workflows.models import EventTrigger, Run, Workflow
from workflows.services.event_triggers import event_triggers_fire
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db(transaction=True)

ECHO_X = {"key": "a", "type": "transform", "config": {"values": {"x": "{{ input.x }}"}}}
FAILS = {"key": "a", "type": "transform", "config": {"values": {"x": "{{ input.missing.deeper }}"}}}
CONSTANT = {"key": "t", "type": "transform", "config": {"values": {"seen": "yes"}}}


def make_workflow(owner, name: str, *nodes: dict, **fields) -> Workflow:
    data = {"name": name, "status": "active", "nodes": list(nodes or [CONSTANT]), **fields}
    return workflow_create(actor=owner, workspace=personal_workspace(owner), data=data)


def add_trigger(api, target: Workflow, source: Workflow, **fields) -> dict:
    body = {"source_workflow": str(source.pk), **fields}
    answer = api.post(f"/api/v3/workflows/{target.pk}/event-triggers", body, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def start(api, workflow: Workflow, run_input: dict | None = None) -> Run:
    answer = api.post(f"/api/v3/workflows/{workflow.pk}/runs", {"input": run_input or {}}, format="json")
    assert answer.status_code == 202, answer.content
    return wait_for_run(answer.json()["id"])


def followers(source: Run, count: int) -> dict[str, Run]:
    """The runs `source`'s end started, by workflow name, once there are `count` of them."""

    def started() -> list[Run] | None:
        runs = list(Run.objects.filter(source_run=source).select_related("workflow"))
        return runs if len(runs) >= count else None

    runs = wait_until(started, timeout=30, message=lambda: f"{count} runs started by {source.pk}")
    return {run.workflow.name: run for run in runs}


def all_runs_finished() -> None:
    """Wait for the worker to finish every run, so that no transaction of it races the test's teardown flush."""
    for run in Run.objects.all():
        wait_for_run(run.pk)


def finished_source(workflow: Workflow, *, status: str = "succeeded", output=None, depth: int = 0) -> Run:
    """A finished run made directly, for calling event_triggers_fire without a worker publishing its end."""
    return Run.objects.create(
        workspace_id=workflow.workspace_id,
        workflow=workflow,
        version=workflow.versions.get(number=workflow.version),
        status=status,
        trigger="manual",
        output=output,
        event_depth=depth,
    )


def test_each_trigger_follows_only_the_end_it_names(engine_worker, user, user_api):
    good = make_workflow(user, "good", ECHO_X)
    bad = make_workflow(user, "bad", FAILS)
    targets = {on: make_workflow(user, f"on {on}") for on in ("succeeded", "failed", "finished")}
    for on, target in targets.items():
        for source in (good, bad):
            add_trigger(user_api, target, source, on=on)

    good_run = start(user_api, good, {"x": 7})
    assert good_run.status == "succeeded", good_run.error
    started = followers(good_run, 2)
    assert sorted(started) == ["on finished", "on succeeded"]
    for run in started.values():
        assert run.trigger == "event"
        assert run.input == good_run.output == {"a": {"x": 7}}
        assert run.event_depth == 1
        assert wait_for_run(run.pk).status == "succeeded", run.error

    bad_run = start(user_api, bad, {"x": 7})
    assert bad_run.status == "failed"
    started = followers(bad_run, 2)
    assert sorted(started) == ["on failed", "on finished"]
    # A failed run has no output; a value that is not an object is wrapped.
    assert all(run.input == {"output": None} for run in started.values())
    assert Run.objects.filter(workflow=targets["succeeded"]).count() == 1
    assert Run.objects.filter(workflow=targets["failed"]).count() == 1
    all_runs_finished()


def test_an_input_template_renders_over_the_source_run(engine_worker, user, user_api):
    source = make_workflow(user, "source", ECHO_X)
    target = make_workflow(user, "target")
    template = {
        "greeting": "hi {{ source.output.a.x }}",
        "from": "{{ source.run.id }}",
        "by": ["{{ source.workflow.name }}"],
    }
    add_trigger(user_api, target, source, input_template=template)

    source_run = start(user_api, source, {"x": "there"})
    [run] = followers(source_run, 1).values()
    assert run.input == {"greeting": "hi there", "from": str(source_run.pk), "by": ["source"]}
    assert run.source_run_id == source_run.pk
    assert run.idempotency_key == f"event:{EventTrigger.objects.get().pk}:{source_run.pk}"
    all_runs_finished()


def test_a_redelivered_fire_starts_nothing_new(engine_worker, user, user_api):
    source = make_workflow(user, "source", ECHO_X)
    target = make_workflow(user, "target")
    add_trigger(user_api, target, source)
    source_run = start(user_api, source, {"x": 1})
    [first] = followers(source_run, 1).values()

    assert event_triggers_fire(run_id=str(source_run.pk)) == []
    assert event_triggers_fire(run_id=str(source_run.pk)) == []
    assert list(Run.objects.filter(workflow=target)) == [first]
    all_runs_finished()


def test_an_a_b_a_cycle_stops_at_the_depth_limit(engine_worker, user, user_api):
    # The worker reads the limit from the same environment as this process (default 10).
    limit = django_settings.DWC_EVENT_TRIGGER_MAX_DEPTH
    a, b = make_workflow(user, "A"), make_workflow(user, "B")
    a_to_b = add_trigger(user_api, b, a)
    b_to_a = add_trigger(user_api, a, b)

    first = start(user_api, a)
    last = wait_until(
        lambda: Run.objects.exclude(refused_triggers=[]).first(),
        timeout=60,
        message=lambda: f"a refusal; runs so far: {Run.objects.count()}",
    )
    chain = list(Run.objects.select_related("workflow").order_by("event_depth"))
    assert [run.event_depth for run in chain] == list(range(limit + 1))
    assert [run.workflow.name for run in chain] == ["AB"[depth % 2] for depth in range(limit + 1)]
    assert all(later.source_run_id == earlier.pk for earlier, later in itertools.pairwise(chain))
    assert (chain[0], chain[-1]) == (first, last)
    assert wait_for_run(last.pk).status == "succeeded"

    [refusal] = last.refused_triggers
    assert refusal["trigger"] == (a_to_b if last.workflow == a else b_to_a)["id"]
    assert "depth" in refusal["reason"]
    shown = user_api.get(f"/api/v3/event-triggers/{refusal['trigger']}/refusals").json()
    assert [(item["source_run"], item["reason"]) for item in shown] == [(str(last.pk), refusal["reason"])]


def test_the_depth_limit_refuses_once_and_lets_shallower_runs_start(engine_worker, user, settings):
    settings.DWC_EVENT_TRIGGER_MAX_DEPTH = 3
    source, target = make_workflow(user, "source"), make_workflow(user, "target")
    trigger = EventTrigger.objects.create(workflow=target, source_workflow=source)

    too_deep = finished_source(source, output={"a": 1}, depth=3)
    assert event_triggers_fire(run_id=str(too_deep.pk)) == []
    assert event_triggers_fire(run_id=str(too_deep.pk)) == []
    too_deep.refresh_from_db()
    [refusal] = too_deep.refused_triggers
    assert refusal["trigger"] == str(trigger.pk) and refusal["workflow"] == str(target.pk)
    assert "depth" in refusal["reason"]
    assert not Run.objects.filter(workflow=target).exists()

    shallower = finished_source(source, output={"a": 1}, depth=2)
    [run] = event_triggers_fire(run_id=str(shallower.pk))
    run.refresh_from_db()
    assert (run.event_depth, run.source_run_id, run.input) == (3, shallower.pk, {"a": 1})
    assert wait_for_run(run.pk).status == "succeeded"


def test_targets_that_cannot_start_are_recorded_on_the_source_run_not_raised(user):
    source = make_workflow(user, "source")
    paused = make_workflow(user, "paused", status="paused")
    strict = make_workflow(
        user, "strict", input_schema={"type": "object", "required": ["topic"], "properties": {"topic": {}}}
    )
    broken = make_workflow(user, "broken template")
    for target in (paused, strict):
        EventTrigger.objects.create(workflow=target, source_workflow=source)
    EventTrigger.objects.create(
        workflow=broken, source_workflow=source, input_template={"x": "{{ source.output.nope.deeper }}"}
    )
    EventTrigger.objects.create(workflow=broken, source_workflow=source, enabled=False)

    source_run = finished_source(source, output={"a": 1})
    assert event_triggers_fire(run_id=str(source_run.pk)) == []
    source_run.refresh_from_db()
    reasons = {entry["workflow"]: entry["reason"] for entry in source_run.refused_triggers}
    assert len(source_run.refused_triggers) == 3
    assert "paused" in reasons[str(paused.pk)]
    assert reasons[str(strict.pk)].startswith("input: input: 'topic' is a required property")
    assert reasons[str(broken.pk)].startswith("input_template: ")
    assert Run.objects.count() == 1


def test_a_source_workflow_outside_the_target_workspace_is_400_at_create(user, user_api):
    target = make_workflow(user, "target")
    stranger = UserFactory()
    foreign = make_workflow(stranger, "foreign")
    shared = MembershipFactory(user=user, role=Membership.Role.EDITOR).workspace
    elsewhere = workflow_create(actor=user, workspace=shared, data={"name": "elsewhere", "status": "active"})
    deleted = make_workflow(user, "deleted")
    user_api.delete(f"/api/v3/workflows/{deleted.pk}")
    url = f"/api/v3/workflows/{target.pk}/event-triggers"
    # One answer whether it is another's, in another of my workspaces, deleted or never was.
    for source_id in (foreign.pk, elsewhere.pk, deleted.pk, "00000000-0000-4000-8000-000000000000"):
        answer = user_api.post(url, {"source_workflow": str(source_id)}, format="json")
        assert answer.status_code == 400, answer.content
        assert answer.json()["errors"] == {"source_workflow": ["No workflow with this id in this workspace."]}
    assert not EventTrigger.objects.exists()


def test_a_bad_template_is_400_naming_the_field(user, user_api):
    source, target = make_workflow(user, "source"), make_workflow(user, "target")
    url = f"/api/v3/workflows/{target.pk}/event-triggers"
    body = {"source_workflow": str(source.pk), "input_template": {"ok": "{{ source.run.id }}", "bad": ["hi {{ x "]}}
    answer = user_api.post(url, body, format="json")
    assert answer.status_code == 400
    assert list(answer.json()["errors"]) == ["input_template.bad.0"]
    not_an_object = user_api.post(url, {"source_workflow": str(source.pk), "input_template": "hi"}, format="json")
    assert not_an_object.status_code == 400
    assert list(not_an_object.json()["errors"]) == ["input_template"]
    wrong_on = user_api.post(url, {"source_workflow": str(source.pk), "on": "sometimes"}, format="json")
    assert list(wrong_on.json()["errors"]) == ["on"]
    assert not EventTrigger.objects.exists()


def test_viewers_read_editors_write_and_strangers_get_404_everywhere(user, user_api):
    source, target = make_workflow(user, "source"), make_workflow(user, "target")
    trigger = add_trigger(user_api, target, source)
    workspace = personal_workspace(user)
    viewer = MembershipFactory(workspace=workspace, role=Membership.Role.VIEWER).user
    stranger = UserFactory()
    endpoints = [
        ("get", f"/api/v3/workflows/{target.pk}/event-triggers", None),
        ("post", f"/api/v3/workflows/{target.pk}/event-triggers", {"source_workflow": str(source.pk)}),
        ("get", f"/api/v3/event-triggers/{trigger['id']}", None),
        ("patch", f"/api/v3/event-triggers/{trigger['id']}", {"enabled": False}),
        ("get", f"/api/v3/event-triggers/{trigger['id']}/refusals", None),
        ("delete", f"/api/v3/event-triggers/{trigger['id']}", None),
    ]
    for method, url, body in endpoints:
        answer = getattr(client_for(stranger), method)(url, body, format="json")
        assert answer.status_code == 404, (method, url, answer.status_code)
        expected = 200 if method == "get" else 403
        assert getattr(client_for(viewer), method)(url, body, format="json").status_code == expected, (method, url)
    assert EventTrigger.objects.get().enabled is True

    listed = client_for(viewer).get(f"/api/v3/workflows/{target.pk}/event-triggers").json()
    assert [item["id"] for item in listed] == [trigger["id"]]
    patched = user_api.patch(
        f"/api/v3/event-triggers/{trigger['id']}", {"on": "failed", "enabled": False}, format="json"
    )
    assert patched.status_code == 200
    assert (patched.json()["on"], patched.json()["enabled"]) == ("failed", False)
    assert user_api.delete(f"/api/v3/event-triggers/{trigger['id']}").status_code == 204
    assert not EventTrigger.objects.exists()


def test_admin_changelist_renders_and_actions_enable_and_disable(client, user):
    source, target = make_workflow(user, "source"), make_workflow(user, "target")
    trigger = EventTrigger.objects.create(workflow=target, source_workflow=source, on="failed")
    client.force_login(User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1"))

    page = client.get("/admin/workflows/eventtrigger/", {"on__exact": "failed", "enabled__exact": "1"})
    assert page.status_code == 200
    assert "source" in page.content.decode() and "target" in page.content.decode()
    assert client.get(f"/admin/workflows/eventtrigger/{trigger.pk}/change/").status_code == 200

    client.post("/admin/workflows/eventtrigger/", {"action": "disable", "_selected_action": [str(trigger.pk)]})
    trigger.refresh_from_db()
    assert trigger.enabled is False
    client.post("/admin/workflows/eventtrigger/", {"action": "enable", "_selected_action": [str(trigger.pk)]})
    trigger.refresh_from_db()
    assert trigger.enabled is True
