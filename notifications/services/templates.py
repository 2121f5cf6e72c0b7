"""Message templates: written in the product's sandboxed template language (workflows.engine.expressions)
with an event's variables, parsed when saved (a syntax error is a 400 naming the field and line),
rendered for each message, and previewed with a sample event. Editors, admins and owners manage them.

The variables: `event` (the whole event), `run`, `workflow`, `step`, `error`, `link`, `workspace`,
`data` (the event's own details) and `recipient` ({name, email} for a message to one person, else null).
"""

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import ProtectedError

from accounts.access import Role, ensure_role
from accounts.models import User, Workspace
from audit.audited_changes import AuditedChanges
from audit.services import AnyRequest
from core.problems import Conflict
from notifications.models import Template
from notifications.services.bodies import body_fields
from notifications.services.events import EVENT_TYPES
from workflows.engine.expressions.checking import template_errors
from workflows.engine.expressions.errors import ExpressionError
from workflows.engine.expressions.rendering import render_template, render_value

WRITABLE_FIELDS = ("name", "subject", "body", "formats")
IGNORED_FIELDS = ("id", "workspace", "created_by", "created_at", "updated_at")
NAME_MAX_LENGTH = Template._meta.get_field("name").max_length
SUBJECT_MAX_LENGTH = Template._meta.get_field("subject").max_length
BODY_MAX_LENGTH = 20_000
NAME_INVALID = f"A name of 1 to {NAME_MAX_LENGTH} characters, not only spaces."
NAME_TAKEN = "A template with this name exists."
TEXT_INVALID = "Must be text of at most {limit} characters."
BODY_EMPTY = "Must not be empty."
FORMATS_INVALID = "Must be an object whose keys are among: {formats}."
TEXT_FORMAT_INVALID = "Must be text (a template)."
JSON_FORMAT_INVALID = "Must be a JSON object or array whose strings are templates."
IN_USE = "The template is used by rules ({rules}); change them first."
EVENT_TYPE_INVALID = f"Must be one of: {', '.join(EVENT_TYPES)}."

TEXT_FORMATS = (Template.Format.MARKDOWN, Template.Format.HTML)
JSON_FORMATS = (Template.Format.SLACK_BLOCKS, Template.Format.TEAMS_CARD, Template.Format.DISCORD_EMBED)

# What a rule without a template sends, per event type.
DEFAULT_SUBJECTS = {
    "run.failed": "Run of {{ workflow.name }} failed",
    "run.succeeded": "Run of {{ workflow.name }} succeeded",
    "run.cancelled": "Run of {{ workflow.name }} was cancelled",
    "run.waiting": "{{ workflow.name }} waits for an approval",
    "run.timed_out": "Run of {{ workflow.name }} timed out",
    "schedule.missed": "{{ workflow.name }} missed {{ data.get('count', 'some') }} scheduled run(s)",
    "webhook.rejected": "A webhook call to {{ workflow.name }} was rejected",
    "credential.expiring": "Credential {{ data.name ~ ' ' if data.get('name') else '' }}"
    "{{ 'has expired' if data.get('expired') else 'expires soon' }}",
    "budget.threshold": "Budget {{ data.get('name', '') }} reached {{ data.get('percent', '?') }} %",
    "budget.exceeded": "Budget {{ data.get('name', '') }} is spent: steps are refused",
    "insight.opened": "{{ data.get('title', 'A new insight') }}",
}
DEFAULT_BODY = (
    "{{ event.type }} in {{ workspace.name }}"
    "{% if workflow %} — workflow {{ workflow.name }}{% endif %}"
    "{% if step %}, step {{ step.key }}{% endif %}"
    "{% if error %}\n{{ error.message }}{% endif %}"
    "{% if data.get('reason') %}\n{{ data.reason }}{% endif %}"
    "{% if data.get('limit') %}\n{{ data.spent }} of {{ data.limit }} {{ data.metric }} spent"
    " ({{ data.period }} {{ data.period_key }}){% endif %}"
)


@dataclass
class Rendered:
    subject: str
    body: str
    # Per-format bodies the template has: markdown and html text, Slack blocks, a Teams card, a Discord embed.
    formats: dict[str, Any] = field(default_factory=dict)


def event_context(event: dict, recipient: User | None = None) -> dict:
    """The variables a template sees for `event` (see the module's docstring)."""
    return {
        "event": event,
        "run": event.get("run"),
        "workflow": event.get("workflow"),
        "step": event.get("step"),
        "error": event.get("error"),
        "link": event.get("link", ""),
        "workspace": event.get("workspace"),
        "data": event.get("data") or {},
        "recipient": {"name": recipient.name, "email": recipient.email} if recipient else None,
    }


def render(template: Template | None, event: dict, recipient: User | None = None) -> Rendered:
    """The message for `event` from `template` (or the event type's default). Raises ExpressionError
    (a PermanentError) when a template fails at render time (an undefined name, a limit)."""
    context = event_context(event, recipient)
    if template is None:
        subject = DEFAULT_SUBJECTS.get(event["type"], "{{ event.type }}")
        return Rendered(render_template(subject, context).strip(), render_template(DEFAULT_BODY, context).strip())
    formats = {
        name: (render_template(source, context) if name in TEXT_FORMATS else render_value(source, context))
        for name, source in template.formats.items()
    }
    return Rendered(
        render_template(template.subject, context).strip(), render_template(template.body, context), formats
    )


def uses_recipient(template: Template | None) -> bool:
    """Whether the template may differ per person (then it is rendered once for each)."""
    return template is not None and "recipient" in f"{template.subject}{template.body}{template.formats}"


def _fields(data: Any, *, template: Template | None) -> dict:
    fields, errors = body_fields(
        data, writable=WRITABLE_FIELDS, ignored=IGNORED_FIELDS, required=() if template else ("name", "body")
    )
    name = fields.get("name")
    if "name" in fields and (not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_LENGTH):
        errors["name"] = [NAME_INVALID]
    for key, limit in (("subject", SUBJECT_MAX_LENGTH), ("body", BODY_MAX_LENGTH)):
        if key in fields and (not isinstance(fields[key], str) or len(fields[key]) > limit):
            errors[key] = [TEXT_INVALID.format(limit=limit)]
    if isinstance(fields.get("body"), str) and not fields["body"].strip():
        errors["body"] = [BODY_EMPTY]
    formats = fields.get("formats", {})
    if not isinstance(formats, dict) or set(formats) - set(Template.Format.values):
        errors["formats"] = [FORMATS_INVALID.format(formats=", ".join(Template.Format.values))]
    else:
        for name, source in formats.items():
            if name in TEXT_FORMATS and not isinstance(source, str):
                errors[f"formats.{name}"] = [TEXT_FORMAT_INVALID]
            elif name in JSON_FORMATS and not isinstance(source, dict | list):
                errors[f"formats.{name}"] = [JSON_FORMAT_INVALID]
    for key in ("subject", "body", "formats"):
        if key in fields and key not in errors:
            errors.update(template_errors(fields[key], key))
    if errors:
        raise ValidationError(errors)
    return fields


def template_check(data: Any, *, template: Template | None = None) -> dict:
    """The fields a body sets, checked as template_create (template None) or template_update would:
    ValidationError naming the bad ones (and the line of a template that does not parse). For forms."""
    return _fields(data, template=template)


def _snapshot(template: Template) -> dict:
    return {name: getattr(template, name) for name in WRITABLE_FIELDS}


AUDITED = AuditedChanges("notification_template", snapshot=_snapshot, name_taken=NAME_TAKEN)


def template_create(*, actor: User, workspace: Workspace, data: Any, request: AnyRequest | None = None) -> Template:
    """A new template from `{name, subject, body, formats}`; editors, admins and owners. Every template in
    it is parsed: ValidationError names the field (`body`, `formats.slack_blocks.0.text`) and line."""
    ensure_role(actor, workspace, Role.EDITOR)
    fields = _fields(data, template=None)
    return AUDITED.created(Template(workspace=workspace, created_by=actor, **fields), actor=actor, request=request)


def template_update(*, template: Template, actor: User, data: Any, request: AnyRequest | None = None) -> Template:
    """Change a template's fields, checked as on creation; editors, admins and owners."""
    ensure_role(actor, template.workspace, Role.EDITOR)
    fields = _fields(data, template=template)
    return AUDITED.updated(template, fields, actor=actor, request=request)


def template_delete(*, template: Template, actor: User, request: AnyRequest | None = None) -> None:
    """Delete a template no rule uses (Conflict, 409, naming the rules otherwise)."""
    ensure_role(actor, template.workspace, Role.EDITOR)
    try:
        AUDITED.deleted(template, actor=actor, request=request)
    except ProtectedError as error:
        rules = ", ".join(sorted(rule.name for rule in error.protected_objects))
        raise Conflict(IN_USE.format(rules=rules)) from error


def sample_event(event_type: str, workspace: Workspace) -> dict:
    """An event of `event_type` with plausible values, for previews and test messages."""
    run = {
        "id": "00000000-0000-4000-8000-000000000001",
        "status": event_type.removeprefix("run.") if event_type.startswith("run.") else "failed",
        "trigger": "schedule",
        "started_at": "2026-01-01T09:00:00+00:00",
        "finished_at": "2026-01-01T09:01:30+00:00",
        "duration_seconds": 90.0,
    }
    data = {
        "schedule.missed": {"count": 3, "cron": "*/5 * * * *", "first": "2026-01-01T08:45:00+00:00"},
        "webhook.rejected": {"reason": "The signature does not match.", "remote_address": "203.0.113.7"},
        "credential.expiring": {"name": "openai-prod", "expires_at": "2026-01-08T00:00:00+00:00", "expired": False},
        "budget.threshold": {
            "name": "Monthly tokens",
            "metric": "tokens",
            "period": "month",
            "period_key": "2026-01",
            "limit": "1000000.000000",
            "spent": "800512.000000",
            "percent": 80,
        },
        "budget.exceeded": {
            "name": "Monthly tokens",
            "metric": "tokens",
            "period": "month",
            "period_key": "2026-01",
            "limit": "1000000.000000",
            "spent": "999100.000000",
            "reserved": "0.000000",
            "estimate": "4100.000000",
            "percent": 99,
        },
        "insight.opened": {
            "id": "00000000-0000-4000-8000-000000000003",
            "kind": "failure_spike",
            "severity": "high",
            "title": "Workflow 00000000 failed 12 of 20 runs (60 %) in the last hour.",
            "numbers": {"failed": 12, "runs": 20, "failure_rate": 0.6, "z": 8.2},
            "period_start": "2026-01-01T08:01:00+00:00",
            "period_end": "2026-01-01T09:01:00+00:00",
        },
    }.get(event_type, {})
    return {
        "type": event_type,
        "id": f"sample:{event_type}",
        "ts": "2026-01-01T09:01:30+00:00",
        "workspace": {"id": str(workspace.pk), "name": workspace.name},
        "subject": "00000000-0000-4000-8000-000000000002",
        "workflow": {"id": "00000000-0000-4000-8000-000000000002", "name": "Quarterly report", "tags": ["reports"]},
        "run": run,
        "step": {"key": "summary", "type": "document", "status": "failed"} if event_type == "run.failed" else None,
        "error": {"type": "provider_error", "message": "The model provider answered 503."}
        if event_type == "run.failed"
        else None,
        "link": "/dashboard/runs/00000000-0000-4000-8000-000000000001/",
        "data": data,
    }


def template_preview(*, actor: User, workspace: Workspace, data: Any) -> Rendered:
    """Render a template's fields (saved or not) with a sample event: `{subject, body, formats,
    event_type}`. ValidationError for a syntax error (as on save) or a failure while rendering."""
    ensure_role(actor, workspace, Role.EDITOR)
    if isinstance(data, dict):
        data = dict(data)
        event_type = data.pop("event_type", "run.failed")
        data.setdefault("name", "preview")
    else:
        event_type = "run.failed"
    if event_type not in EVENT_TYPES:
        raise ValidationError({"event_type": [EVENT_TYPE_INVALID]})
    fields = _fields(data, template=None)
    template = Template(workspace=workspace, **fields)
    try:
        return render(template, sample_event(event_type, workspace), recipient=actor)
    except ExpressionError as error:
        raise ValidationError({"non_field_errors": [error.message]}) from error
