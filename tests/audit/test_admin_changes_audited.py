"""Every write an operator makes through the Django admin is audited, as the API's writes are: the real
admin forms and actions are posted, and each one leaves its event (action, operator, target, changes
without secrets, address, user agent, request id) while the chain still verifies. A form that does not
validate writes no event; a bulk delete writes one per object, with the deletion or not at all."""

import json

import pytest
from django.contrib import admin as django_admin
from django.contrib.auth.models import Group, Permission
from django.test import Client, RequestFactory
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.lockout import lockout_failure_record, lockout_remaining
from accounts.models import Membership, User, Workspace
from audit.chain import chain_verify
from audit.models import AuditEvent
from tests.audit.conftest import CREDENTIAL_SECRET, HOOK_SECRET, PASSWORD, assert_no_secret_recorded
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from workflows.admin import credentials as credentials_admin
from workflows.credentials import credential_value
from workflows.models import Credential, EventTrigger, Schedule, WebhookTrigger, Workflow
from workflows.services.credentials import credential_create
from workflows.services.event_triggers import event_trigger_create
from workflows.services.schedules import schedule_create
from workflows.services.webhooks import webhook_create
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

USER_AGENT = "admin-audit-tests/1.0"
Role = Membership.Role


@pytest.fixture
def root(db) -> User:
    return User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1")


@pytest.fixture
def operator(root) -> Client:
    """A superuser in no workspace, in a browser: the admin serves them everywhere."""
    client = Client(HTTP_USER_AGENT=USER_AGENT)
    client.force_login(root)
    return client


@pytest.fixture(autouse=True)
def chain_still_verifies():
    yield
    verification = chain_verify()
    assert verification.ok, verification


@pytest.fixture
def team(db) -> Workspace:
    return WorkspaceFactory(name="Team")


@pytest.fixture
def owner(team) -> User:
    return MembershipFactory(workspace=team, role=Role.OWNER).user


@pytest.fixture
def workflow(owner, team) -> Workflow:
    nodes = [
        {"key": "fetch", "type": "text", "title": "Fetch", "content": "news"},
        {"key": "write", "type": "text", "title": "Write", "content": "{{ nodes.fetch.output }}"},
    ]
    return workflow_create(actor=owner, workspace=team, data={"name": "Newsletter", "nodes": nodes})


# --- helpers ---------------------------------------------------------------------------------------


def form_data(page) -> dict:
    """What a browser posts back for a rendered admin form and its inlines, unchanged."""
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if field.disabled or value is None or value is False:
                continue
            if value is True:
                data[form.add_prefix(name)] = "on"
            elif isinstance(value, list | tuple):
                data[form.add_prefix(name)] = [str(item) for item in value]
            else:
                data[form.add_prefix(name)] = str(value)
    return data


def inline_index(data: dict, prefix: str, field: str, value: str) -> int:
    """The index of the inline row whose `field` is `value`."""
    return next(
        int(key.split("-")[1])
        for key, posted in data.items()
        if key.startswith(f"{prefix}-") and key.endswith(f"-{field}") and posted == value
    )


def with_new_row(data: dict, prefix: str, **values) -> dict:
    index = int(data[f"{prefix}-TOTAL_FORMS"])
    return {**data, f"{prefix}-TOTAL_FORMS": str(index + 1), **{f"{prefix}-{index}-{k}": v for k, v in values.items()}}


def saved(answer) -> None:
    errors = answer.context["adminform"].form.errors if answer.context and "adminform" in answer.context else ""
    assert answer.status_code == 302, errors or answer.content.decode()[:2000]


def new_events(since: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=since).exclude(action="auth.login").order_by("id"))


def last_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def by_operator(event: AuditEvent, root: User) -> AuditEvent:
    """The event names the operator and where the request came from."""
    assert (event.actor, event.actor_type, event.actor_label) == (root, "user", root.email), event
    assert (event.ip, event.user_agent, len(event.request_id)) == ("127.0.0.1", USER_AGENT, 32), event
    return event


def only(events: list[AuditEvent], action: str) -> AuditEvent:
    matching = [event for event in events if event.action == action]
    assert len(matching) == 1, [event.action for event in events]
    return matching[0]


def bulk_delete(operator, changelist: str, objects) -> None:
    answer = operator.post(
        changelist, {"action": "delete_selected", "_selected_action": [str(obj.pk) for obj in objects], "post": "yes"}
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]


# --- users and groups ------------------------------------------------------------------------------

USERS = "/admin/accounts/user/"


def test_adding_changing_and_deleting_a_user_is_audited(operator, root, team):
    start = last_id()
    saved(
        operator.post(
            f"{USERS}add/", {"email": "new@example.com", "name": "New", "password1": PASSWORD, "password2": PASSWORD}
        )
    )
    user = User.objects.get(email="new@example.com")
    created = by_operator(only(new_events(start), "user.created"), root)
    assert (created.target_type, created.target_id) == ("user", str(user.pk))
    assert created.changes["email"] == [None, "new@example.com"]
    assert created.changes["password"] == [None, "***"]
    assert created.changes["is_staff"] == [None, False]

    # Made staff and superuser, put into a group and a workspace, on one change page.
    group = Group.objects.create(name="operators")
    data = form_data(operator.get(f"{USERS}{user.pk}/change/"))
    data.update(is_staff="on", is_superuser="on", groups=[str(group.pk)])
    data = with_new_row(data, "memberships", workspace=str(team.pk), role=Role.EDITOR)
    start = last_id()
    saved(operator.post(f"{USERS}{user.pk}/change/", data))
    events = new_events(start)
    updated = by_operator(only(events, "user.updated"), root)
    assert updated.changes == {
        "is_staff": [False, True],
        "is_superuser": [False, True],
        "groups": [[], ["operators"]],
    }
    added = by_operator(only(events, "workspace.member_added"), root)
    assert (added.workspace, added.target_id) == (team, str(user.pk))
    assert added.changes == {"email": [None, "new@example.com"], "role": [None, "editor"]}

    # Saved unchanged: nothing to record.
    start = last_id()
    saved(operator.post(f"{USERS}{user.pk}/change/", form_data(operator.get(f"{USERS}{user.pk}/change/"))))
    assert new_events(start) == []

    start = last_id()
    saved(operator.post(f"{USERS}{user.pk}/delete/", {"post": "yes"}))
    deleted = by_operator(only(new_events(start), "user.deleted"), root)
    assert (deleted.target_type, deleted.target_id) == ("user", str(user.pk))
    assert deleted.changes["email"] == ["new@example.com", None]
    assert deleted.changes["password"] == ["***", None]
    assert not User.objects.filter(pk=user.pk).exists()
    assert_no_secret_recorded(PASSWORD)


def test_a_password_set_in_the_admin_is_audited_and_ends_the_users_sessions(operator, root):
    user = UserFactory()
    refresh = RefreshToken.for_user(user)
    start = last_id()
    answer = operator.post(
        f"{USERS}{user.pk}/password/", {"password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"}
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    user.refresh_from_db()
    assert user.check_password(PASSWORD) and user.password_changed_at is not None
    changed = by_operator(only(new_events(start), "auth.password_changed"), root)
    assert (changed.target_type, changed.target_id) == ("user", str(user.pk))
    assert changed.changes == {
        "password": ["***", "***"],
        "refresh_tokens_revoked": [None, 1],
        "sessions_ended": [None, 0],  # the token above was made by hand, with no login session
    }
    assert APIClient().post("/api/v3/auth/token/refresh", {"refresh": str(refresh)}, format="json").status_code == 401
    assert_no_secret_recorded(PASSWORD)

    start = last_id()
    mismatch = operator.post(
        f"{USERS}{user.pk}/password/", {"password1": PASSWORD, "password2": "other-" + PASSWORD, "usable_password": "1"}
    )
    assert mismatch.status_code == 200
    assert new_events(start) == []


def test_lifting_a_lockout_in_the_admin_is_audited(operator, root, settings):
    user = UserFactory()
    request = RequestFactory().post("/api/v3/auth/token", REMOTE_ADDR="198.51.100.4")
    for _ in range(settings.DWC_LOGIN_MAX_FAILURES):
        lockout_failure_record(email=user.email, request=request)
    assert lockout_remaining(email=user.email, ip="198.51.100.4")
    start = last_id()
    operator.post(USERS, {"action": "lift_login_lockouts", "_selected_action": [str(user.pk)]})
    assert not lockout_remaining(email=user.email, ip="198.51.100.4")
    lifted = by_operator(only(new_events(start), "auth.lockout_lifted"), root)
    assert (lifted.target_id, lifted.changes) == (str(user.pk), {"locked_addresses": [["198.51.100.4"], None]})


def test_groups_are_audited(operator, root):
    permission = Permission.objects.get(codename="change_workflow")
    start = last_id()
    saved(operator.post("/admin/auth/group/add/", {"name": "editors", "permissions": [str(permission.pk)]}))
    group = Group.objects.get(name="editors")
    created = by_operator(only(new_events(start), "group.created"), root)
    assert created.changes == {"name": [None, "editors"], "permissions": [None, [str(permission)]]}

    start = last_id()
    saved(operator.post(f"/admin/auth/group/{group.pk}/change/", {"name": "writers"}))
    assert only(new_events(start), "group.updated").changes == {
        "name": ["editors", "writers"],
        "permissions": [[str(permission)], []],
    }
    start = last_id()
    saved(operator.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}))
    assert only(new_events(start), "group.deleted").target_id == str(group.pk)


# --- workspaces and memberships --------------------------------------------------------------------

WORKSPACES = "/admin/accounts/workspace/"
MEMBERSHIPS = "/admin/accounts/membership/"


def test_workspaces_and_their_member_inline_are_audited(operator, root):
    ann, bob = UserFactory(email="ann@example.com"), UserFactory(email="bob@example.com")
    data = form_data(operator.get(f"{WORKSPACES}add/"))
    data.update(name="Ops")
    data = with_new_row(data, "memberships", user=str(ann.pk), role=Role.OWNER)
    data = with_new_row(data, "memberships", user=str(bob.pk), role=Role.VIEWER)
    start = last_id()
    saved(operator.post(f"{WORKSPACES}add/", data))
    workspace = Workspace.objects.get(name="Ops")
    events = new_events(start)
    created = by_operator(only(events, "workspace.created"), root)
    assert (created.workspace, created.target_id) == (workspace, str(workspace.pk))
    assert created.changes["name"] == [None, "Ops"]
    assert created.changes["is_personal"] == [None, False]
    assert created.changes["mfa_required"] == [None, False]
    added = [event for event in events if event.action == "workspace.member_added"]
    assert {(event.target_id, event.changes["role"][1]) for event in added} == {
        (str(ann.pk), "owner"),
        (str(bob.pk), "viewer"),
    }

    # Renamed, Bob made an editor and Ann removed, in one save.
    data = form_data(operator.get(f"{WORKSPACES}{workspace.pk}/change/"))
    data["name"] = "Operations"
    data[f"memberships-{inline_index(data, 'memberships', 'user', str(bob.pk))}-role"] = Role.EDITOR
    data[f"memberships-{inline_index(data, 'memberships', 'user', str(ann.pk))}-DELETE"] = "on"
    start = last_id()
    saved(operator.post(f"{WORKSPACES}{workspace.pk}/change/", data))
    events = new_events(start)
    assert by_operator(only(events, "workspace.updated"), root).changes == {"name": ["Ops", "Operations"]}
    changed = only(events, "workspace.role_changed")
    assert (changed.target_id, changed.changes) == (str(bob.pk), {"role": ["viewer", "editor"]})
    removed = only(events, "workspace.member_removed")
    assert (removed.workspace, removed.target_id) == (workspace, str(ann.pk))
    assert removed.changes == {"email": ["ann@example.com", None], "role": ["owner", None]}

    start = last_id()
    saved(operator.post(f"{WORKSPACES}{workspace.pk}/delete/", {"post": "yes"}))
    deleted = by_operator(only(new_events(start), "workspace.deleted"), root)
    assert (deleted.workspace_id, deleted.workspace_ref, deleted.target_id) == (None, "", str(workspace.pk))
    assert deleted.changes["name"] == ["Operations", None]
    assert deleted.changes["is_personal"] == [False, None]
    assert deleted.changes["mfa_required"] == [False, None]


def test_memberships_are_audited_with_the_membership_actions(operator, root, team):
    user = UserFactory(email="carol@example.com")
    start = last_id()
    saved(operator.post(f"{MEMBERSHIPS}add/", {"user": str(user.pk), "workspace": str(team.pk), "role": "viewer"}))
    membership = Membership.objects.get(user=user, workspace=team)
    added = by_operator(only(new_events(start), "workspace.member_added"), root)
    assert (added.workspace, added.target_type, added.target_id) == (team, "user", str(user.pk))
    assert added.changes == {"email": [None, "carol@example.com"], "role": [None, "viewer"]}

    start = last_id()
    saved(
        operator.post(
            f"{MEMBERSHIPS}{membership.pk}/change/", {"user": str(user.pk), "workspace": str(team.pk), "role": "admin"}
        )
    )
    assert only(new_events(start), "workspace.role_changed").changes == {"role": ["viewer", "admin"]}

    start = last_id()
    saved(operator.post(f"{MEMBERSHIPS}{membership.pk}/delete/", {"post": "yes"}))
    removed = by_operator(only(new_events(start), "workspace.member_removed"), root)
    assert removed.changes == {"email": ["carol@example.com", None], "role": ["admin", None]}


def test_a_bulk_delete_records_one_event_per_object_in_one_append(operator, root, team):
    memberships = [MembershipFactory(workspace=team) for _ in range(3)]
    start = last_id()
    bulk_delete(operator, MEMBERSHIPS, memberships)
    removed = new_events(start)
    assert [event.action for event in removed] == ["workspace.member_removed"] * 3
    assert {event.target_id for event in removed} == {str(m.user_id) for m in memberships}
    assert len({event.timestamp for event in removed}) == 1  # one append, in the deletion's transaction
    assert not Membership.objects.filter(pk__in=[m.pk for m in memberships]).exists()
    for event in removed:
        by_operator(event, root)


def test_a_bulk_delete_that_fails_keeps_the_objects_and_records_nothing(operator, team, monkeypatch):
    memberships = [MembershipFactory(workspace=team) for _ in range(2)]

    def fail(self, request, queryset):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(django_admin.ModelAdmin, "delete_queryset", fail)
    start = last_id()
    with pytest.raises(RuntimeError):
        bulk_delete(operator, MEMBERSHIPS, memberships)
    assert new_events(start) == []
    assert Membership.objects.filter(pk__in=[m.pk for m in memberships]).count() == 2


# --- workflows and nodes ---------------------------------------------------------------------------

WORKFLOWS = "/admin/workflows/workflow/"


def test_a_workflow_edited_in_the_admin_records_its_node_changes(operator, root, workflow):
    url = f"{WORKFLOWS}{workflow.pk}/change/"
    data = form_data(operator.get(url))
    data["description"] = "Weekly"
    data[f"nodes-{inline_index(data, 'nodes', 'key', 'write')}-title"] = "Write the issue"
    data = with_new_row(
        data,
        "nodes",
        key="send",
        type="text",
        title="Send",
        priority="2",
        trigger_rule="all_success",
        order="3",
        config="{}",
        retry="{}",
        tags="[]",
        position="{}",
        content="done",
    )
    start = last_id()
    saved(operator.post(url, data))
    events = new_events(start)
    send = workflow.nodes.get(key="send")
    updated = by_operator(only(events, "workflow.updated"), root)
    assert (updated.workspace, updated.target_id) == (workflow.workspace, str(workflow.pk))
    assert updated.changes == {
        "description": ["", "Weekly"],
        "nodes": [["fetch", "write"], ["fetch", "write", "send"]],
        "version": [1, 2],
    }
    node_updated = only(events, "node.updated")
    assert (node_updated.target_type, node_updated.changes) == ("node", {"title": ["Write", "Write the issue"]})
    node_created = only(events, "node.created")
    assert node_created.target_id == str(send.pk)
    assert node_created.changes["key"] == [None, "send"] and node_created.changes["workflow"] == [
        None,
        str(workflow.pk),
    ]

    data = form_data(operator.get(url))
    data[f"nodes-{inline_index(data, 'nodes', 'key', 'send')}-DELETE"] = "on"
    start = last_id()
    saved(operator.post(url, data))
    deleted = only(new_events(start), "node.deleted")
    assert (deleted.target_id, deleted.changes) == (
        str(send.pk),
        {"key": ["send", None], "type": ["text", None], "title": ["Send", None], "workflow": [str(workflow.pk), None]},
    )


def test_deleting_a_workflow_in_the_admin_is_the_audited_soft_delete(operator, root, workflow):
    page = operator.get(f"{WORKFLOWS}{workflow.pk}/delete/")
    assert page.status_code == 200
    start = last_id()
    saved(operator.post(f"{WORKFLOWS}{workflow.pk}/delete/", {"post": "yes"}))
    deleted = by_operator(only(new_events(start), "workflow.deleted"), root)
    assert (deleted.workspace, deleted.target_id) == (workflow.workspace, str(workflow.pk))
    workflow.refresh_from_db()
    assert workflow.deleted_at is not None and workflow.nodes.count() == 2  # restorable, history kept


def test_adding_a_workflow_is_audited_once(operator, root, team):
    data = {**form_data(operator.get(f"{WORKFLOWS}add/")), "name": "Reminder", "workspace": str(team.pk)}
    data["status"] = "draft"
    start = last_id()
    saved(operator.post(f"{WORKFLOWS}add/", data))
    created = by_operator(only(new_events(start), "workflow.created"), root)
    assert created.changes["name"] == [None, "Reminder"] and created.changes["version"] == [None, 1]


# --- credentials -----------------------------------------------------------------------------------

CREDENTIALS = "/admin/workflows/credential/"


def test_credentials_are_audited_without_their_values(operator, root, team):
    value = json.dumps({"token": CREDENTIAL_SECRET})
    start = last_id()
    saved(
        operator.post(
            f"{CREDENTIALS}add/", {"workspace": str(team.pk), "name": "api", "kind": "http_bearer", "value": value}
        )
    )
    credential = Credential.objects.get(name="api")
    created = by_operator(only(new_events(start), "credential.created"), root)
    assert (created.workspace, created.target_id) == (team, str(credential.pk))
    assert created.changes == {"name": [None, "api"], "kind": [None, "http_bearer"], "value": [None, "***"]}

    start = last_id()
    saved(
        operator.post(
            f"{CREDENTIALS}{credential.pk}/change/", {"name": "api-main", "kind": "http_bearer", "value": value}
        )
    )
    assert only(new_events(start), "credential.updated").changes == {
        "name": ["api", "api-main"],
        "value": ["***", "***"],
    }

    start = last_id()
    saved(operator.post(f"{CREDENTIALS}{credential.pk}/delete/", {"post": "yes"}))
    deleted = by_operator(only(new_events(start), "credential.deleted"), root)
    assert (deleted.workspace, deleted.target_id) == (team, str(credential.pk))
    assert deleted.changes == {"name": ["api-main", None], "kind": ["http_bearer", None], "value": ["***", None]}
    assert_no_secret_recorded(CREDENTIAL_SECRET)


def test_a_bulk_credential_delete_is_audited_and_all_or_nothing(operator, root, owner, team, monkeypatch):
    credentials = [
        credential_create(
            actor=owner, workspace=team, data={"name": f"c{i}", "kind": "hmac_secret", "value": {"secret": HOOK_SECRET}}
        )
        for i in range(2)
    ]
    start = last_id()
    bulk_delete(operator, CREDENTIALS, credentials)
    deleted = new_events(start)
    assert [event.action for event in deleted] == ["credential.deleted"] * 2
    assert {event.target_id for event in deleted} == {str(c.pk) for c in credentials}
    assert not Credential.objects.exists()

    kept = [
        credential_create(
            actor=owner, workspace=team, data={"name": f"k{i}", "kind": "hmac_secret", "value": {"secret": HOOK_SECRET}}
        )
        for i in range(2)
    ]
    real_delete, calls = credentials_admin.credential_delete, []

    def second_fails(**kwargs):
        calls.append(kwargs["credential"].pk)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        real_delete(**kwargs)

    monkeypatch.setattr(credentials_admin, "credential_delete", second_fails)
    start = last_id()
    with pytest.raises(RuntimeError):
        bulk_delete(operator, CREDENTIALS, kept)
    assert new_events(start) == [] and Credential.objects.count() == 2
    assert credential_value(workspace_id=team.pk, name="k0", kinds=("hmac_secret",)) == {"secret": HOOK_SECRET}
    assert_no_secret_recorded(HOOK_SECRET)


# --- triggers: event triggers, schedules, webhooks -------------------------------------------------

EVENT_TRIGGERS = "/admin/workflows/eventtrigger/"
SCHEDULES = "/admin/workflows/schedule/"
WEBHOOKS = "/admin/workflows/webhooktrigger/"


def test_event_triggers_are_audited(operator, root, owner, workflow):
    source = workflow_create(actor=owner, workspace=workflow.workspace, data={"name": "Source"})
    fields = {"source_workflow": str(source.pk), "on": "succeeded", "workflow": str(workflow.pk), "enabled": "on"}
    start = last_id()
    saved(operator.post(f"{EVENT_TRIGGERS}add/", {**fields, "input_template": '{"a": "{{ source.output }}"}'}))
    trigger = EventTrigger.objects.get()
    created = by_operator(only(new_events(start), "event_trigger.created"), root)
    assert (created.workspace, created.target_type, created.target_id) == (
        workflow.workspace,
        "event_trigger",
        str(trigger.pk),
    )
    assert created.changes["source_workflow"] == [None, str(source.pk)]
    assert created.changes["on"] == [None, "succeeded"]

    start = last_id()
    saved(operator.post(f"{EVENT_TRIGGERS}{trigger.pk}/change/", {**fields, "on": "failed", "input_template": "null"}))
    assert only(new_events(start), "event_trigger.updated").changes == {
        "on": ["succeeded", "failed"],
        "input_template": [{"a": "{{ source.output }}"}, None],
    }

    start = last_id()
    operator.post(EVENT_TRIGGERS, {"action": "disable", "_selected_action": [str(trigger.pk)]})
    disabled = by_operator(only(new_events(start), "event_trigger.updated"), root)
    assert disabled.changes == {"enabled": [True, False]}

    start = last_id()
    saved(operator.post(f"{EVENT_TRIGGERS}{trigger.pk}/delete/", {"post": "yes"}))
    deleted = by_operator(only(new_events(start), "event_trigger.deleted"), root)
    assert deleted.changes["workflow"] == [str(workflow.pk), None]

    triggers = [
        event_trigger_create(workflow=workflow, actor=owner, data={"source_workflow": str(source.pk), "on": "failed"})
        for _ in range(2)
    ]
    start = last_id()
    bulk_delete(operator, EVENT_TRIGGERS, triggers)
    assert [event.action for event in new_events(start)] == ["event_trigger.deleted"] * 2


def test_schedules_are_audited_through_their_services(operator, root, owner, workflow):
    fields = {
        "cron": "0 12 * * *",
        "timezone": "UTC",
        "input": "{}",
        "enabled": "on",
        "overlap": "skip",
        "catchup": "none",
    }
    inline = {f"slots-{name}": "0" for name in ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS")}
    start = last_id()
    saved(operator.post(f"{SCHEDULES}add/", {**fields, **inline, "workflow": str(workflow.pk)}))
    schedule = Schedule.objects.get()
    created = by_operator(only(new_events(start), "schedule.created"), root)
    assert (created.workspace, created.target_id) == (workflow.workspace, str(schedule.pk))

    start = last_id()
    saved(operator.post(f"{SCHEDULES}{schedule.pk}/change/", {**fields, **inline, "cron": "30 6 * * 1"}))
    assert only(new_events(start), "schedule.updated").changes["cron"] == ["0 12 * * *", "30 6 * * 1"]

    others = [schedule_create(workflow=workflow, actor=owner, data={"cron": "0 * * * *"}) for _ in range(2)]
    start = last_id()
    bulk_delete(operator, SCHEDULES, [schedule, *others])
    deleted = new_events(start)
    assert [event.action for event in deleted] == ["schedule.deleted"] * 3
    assert not Schedule.objects.exists()
    for event in deleted:
        by_operator(event, root)


def test_webhooks_are_audited_without_their_tokens(operator, root, owner, workflow):
    hook, token = webhook_create(workflow=workflow, actor=owner, secret=HOOK_SECRET)
    data = form_data(operator.get(f"{WEBHOOKS}{hook.pk}/change/"))
    data.update(dedupe_header="X-Delivery", include_headers='["x-source"]')
    start = last_id()
    saved(operator.post(f"{WEBHOOKS}{hook.pk}/change/", data))
    updated = by_operator(only(new_events(start), "webhook.updated"), root)
    assert (updated.workspace, updated.target_type, updated.target_id) == (workflow.workspace, "webhook", str(hook.pk))
    assert updated.changes == {"dedupe_header": ["", "X-Delivery"], "include_headers": [[], ["x-source"]]}

    start = last_id()
    operator.post(WEBHOOKS, {"action": "rotate", "_selected_action": [str(hook.pk)]})
    assert by_operator(only(new_events(start), "webhook.rotated"), root).changes == {"token": ["***", "***"]}

    start = last_id()
    saved(operator.post(f"{WEBHOOKS}{hook.pk}/delete/", {"post": "yes"}))
    assert by_operator(only(new_events(start), "webhook.deleted"), root).target_id == str(hook.pk)

    hooks = [webhook_create(workflow=workflow, actor=owner)[0] for _ in range(2)]
    start = last_id()
    bulk_delete(operator, WEBHOOKS, hooks)
    assert [event.action for event in new_events(start)] == ["webhook.deleted"] * 2
    assert not WebhookTrigger.objects.exists()
    assert_no_secret_recorded(HOOK_SECRET, token)


# --- failed forms ----------------------------------------------------------------------------------


def test_a_form_that_does_not_validate_records_nothing(operator, team, workflow):
    membership = MembershipFactory(workspace=team)
    credential = Credential.objects.create(workspace=team, name="api", kind="http_bearer", encrypted_value=b"x")
    refused = [
        (f"{USERS}add/", {"email": "x@example.com", "password1": PASSWORD, "password2": "other-" + PASSWORD}),
        (f"{USERS}{membership.user_id}/change/", {"email": "not an email"}),
        (f"{WORKSPACES}add/", {"name": "", **{f"memberships-{n}": "0" for n in ("TOTAL_FORMS", "INITIAL_FORMS")}}),
        (
            f"{MEMBERSHIPS}{membership.pk}/change/",
            {"user": str(membership.user_id), "workspace": str(team.pk), "role": "god"},
        ),
        (
            f"{CREDENTIALS}add/",
            {"workspace": str(team.pk), "name": "x", "kind": "http_bearer", "value": '{"user": "u"}'},
        ),
        (f"{CREDENTIALS}{credential.pk}/change/", {"name": "api", "kind": "openai", "value": ""}),
        (f"{EVENT_TRIGGERS}add/", {"source_workflow": str(workflow.pk), "on": "never", "workflow": str(workflow.pk)}),
        ("/admin/auth/group/add/", {"name": ""}),
    ]
    start = last_id()
    for url, data in refused:
        answer = operator.post(url, data)
        assert answer.status_code == 200, url
        assert answer.context["adminform"].form.errors, url
    assert new_events(start) == []
    assert Membership.objects.get(pk=membership.pk).role == membership.role
