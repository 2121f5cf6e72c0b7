"""What the schema-walking tests share: the API's operations as the OpenAPI schema lists them, and a
workspace with one object of every kind for their paths to name.

Used by tests/test_authorization_sweep.py and tests/test_mass_assignment.py (schemathesis, in
tests/test_api_fuzz.py, reads the schema by itself).
"""

import functools

from drf_spectacular.generators import SchemaGenerator

from accounts.models import Membership, Workspace
from accounts.services import membership_add
from analytics.models import Insight, Report
from notifications.models import Channel, PushSubscription, Rule, Template
from notifications.services.deliveries import delivery_create, delivery_send
from tests.factories import UserFactory
from workflows.models import Budget, Document
from workflows.services.credentials import credential_save
from workflows.services.event_triggers import event_trigger_create
from workflows.services.runs import run_trigger
from workflows.services.schedules import schedule_create
from workflows.services.webhooks import webhook_create
from workflows.services.workflows import workflow_create

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


@functools.cache
def api_schema() -> dict:
    """The OpenAPI document /api/schema/ serves."""
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(methods: tuple[str, ...] = HTTP_METHODS) -> list[tuple[str, str]]:
    """(path, method) for every operation of the schema with one of `methods`, in the schema's order."""
    return [(path, method) for path, item in api_schema()["paths"].items() for method in item if method in methods]


def _resolved(schema: dict) -> dict:
    if "$ref" in schema:
        return _resolved(api_schema()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]])
    return schema


def request_fields(path: str, method: str) -> set[str]:
    """The fields the operation's documented request body lets a client write (read-only ones left out)."""
    body = api_schema()["paths"][path][method].get("requestBody", {})
    fields: set[str] = set()
    for media in body.get("content", {}).values():
        properties = _resolved(media.get("schema", {})).get("properties", {})
        fields |= {name for name, spec in properties.items() if not _resolved(spec).get("readOnly")}
    return fields


def build_world() -> dict:
    """Workspace A with one object of every kind, its owner and viewer, and an outsider from workspace B."""
    owner, viewer, outsider = UserFactory(), UserFactory(), UserFactory()
    workspace = Workspace.objects.create(name="A", created_by=owner)
    Membership.objects.create(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    membership_add(workspace=workspace, actor=owner, email=viewer.email, role=Membership.Role.VIEWER)
    nodes = [
        {"key": "doc", "type": "document", "prompt": "Hi"},
        {"key": "ok", "type": "approval", "config": {}, "depends_on": []},
    ]
    workflow = workflow_create(
        actor=owner, workspace=workspace, data={"name": "A's", "status": "active", "nodes": nodes}
    )
    source = workflow_create(actor=owner, workspace=workspace, data={"name": "Source", "nodes": []})
    run, _ = run_trigger(workflow=workflow, input={}, trigger="api", actor=owner)
    document = Document.objects.create(
        workspace=workspace, workflow=workflow, run=run, node_key="doc", version=1, title="Doc", provider="template"
    )
    # Its next version: the paths of a document answer for it, so that its diff has a previous one.
    revision = Document.objects.create(
        workspace=workspace,
        workflow=workflow,
        run=run,
        node_key="doc",
        version=2,
        previous=document,
        title="Doc",
        content="Revised",
        provider="template",
    )
    credential = credential_save(workspace_id=workspace.pk, name="cred", kind="http_bearer", value={"token": "t"})
    trigger = event_trigger_create(
        workflow=workflow, actor=owner, data={"source_workflow": str(source.pk), "on": "succeeded"}
    )
    schedule = schedule_create(workflow=workflow, actor=owner, data={"cron": "0 * * * *"})
    hook, _token = webhook_create(workflow=workflow, actor=owner)
    channel = Channel.objects.create(workspace=workspace, name="inbox", kind=Channel.Kind.IN_APP)
    delivery = delivery_create(channel=channel, subject="Hello", recipient=owner)
    delivery_send(delivery_id=delivery.pk)
    template = Template.objects.create(workspace=workspace, name="failures", body="{{ error.message }}")
    rule = Rule.objects.create(workspace=workspace, name="failures", events=["run.failed"], roles=["owner"])
    push_subscription = PushSubscription.objects.create(
        user=owner, endpoint="https://push.example.com/send/world", p256dh="BAAA", auth="AAAA"
    )
    insight = Insight.objects.create(
        workspace=workspace,
        workflow_id=workflow.pk,
        kind=Insight.Kind.SLOWEST_NODE,
        subject=str(workflow.pk),
        severity=Insight.Severity.INFO,
        title="The slowest node is doc.",
        period_start=run.created_at,
        period_end=run.created_at,
    )
    report = Report.objects.create(workspace=workspace, name="weekly", metrics=["runs", "failed"], created_by=owner)
    budget = Budget.objects.create(
        workspace=workspace, name="daily tokens", metric="tokens", period="day", limit=100_000, created_by=owner
    )
    values = {
        "/api/v3/analytics/workflows/": workflow.pk,
        "/api/v3/analytics/insights/": insight.pk,
        "/api/v3/analytics/reports/": report.pk,
        "/api/v3/budgets/": budget.pk,
        "/api/v3/credentials/": credential.pk,
        "/api/v3/documents/": revision.pk,
        "/api/v3/event-triggers/": trigger.pk,
        "/api/v3/nodes/": workflow.nodes.get(key="doc").pk,
        # Before the inbox's prefix, which would match these paths too.
        "/api/v3/notifications/channels/": channel.pk,
        "/api/v3/notifications/deliveries/": delivery.pk,
        "/api/v3/notifications/rules/": rule.pk,
        "/api/v3/notifications/templates/": template.pk,
        "/api/v3/notifications/push-subscriptions/": push_subscription.pk,
        "/api/v3/notifications/": owner.notifications.get().pk,
        "/api/v3/runs/": run.pk,
        "/api/v3/schedules/": schedule.pk,
        "/api/v3/webhooks/": hook.pk,
        "/api/v3/workflows/": workflow.pk,
        "/api/v3/workspaces/": workspace.pk,
    }
    return {
        "owner": owner,
        "viewer": viewer,
        "outsider": outsider,
        "values": values,
        "workspace": workspace,
        "workflow": workflow,
        "source": source,
        "run": run,
        "document": document,
        "revision": revision,
        "credential": credential,
        "trigger": trigger,
        "schedule": schedule,
        "hook": hook,
        "channel": channel,
        "delivery": delivery,
        "rule": rule,
        "template": template,
        "notification": owner.notifications.get(),
        "push_subscription": push_subscription,
        "insight": insight,
        "report": report,
        "budget": budget,
    }


def concrete(path: str, world: dict) -> str:
    """The path with every parameter replaced by workspace A's object (or a sub-key of it)."""
    prefix = next((prefix for prefix in world["values"] if path.startswith(prefix)), None)
    assert prefix is not None, f"add an object of workspace A for {path} to tests/api_world.py"
    path = path.replace(path[len(prefix) : path.index("}") + 1], str(world["values"][prefix]), 1)
    extra = {"{node_key}": "ok", "{number}": "1", "{user_id}": str(world["owner"].pk)}
    for name, value in extra.items():
        path = path.replace(name, value)
    assert "{" not in path, f"add a value for the parameters of {path} to tests/api_world.py"
    return path
