"""Saved custom reports: create, change, delete (editors, admins and owners of the workspace; audited).

A report's body: `{name, metrics, filters: {workflow}, range, start, end, bucket}`: a relative range
(`range`, ending when the report runs) or a fixed one (`start` and `end`), never both; naming one
replaces the other. `bucket` null picks the finest kept for the range when the report runs.

Which metric and range names exist belongs to the read side (analytics.selectors, a layer above this
one): the API checks the names against it before calling here, and a report run checks them again, so
a metric removed later is a 400 naming `metrics`, not a failure. Everything else is checked here.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.access import Role, ensure_role
from accounts.models import User, Workspace
from analytics.models import Granularity, Report
from audit.audited_changes import AuditedChanges
from audit.services import AnyRequest

Errors = dict[str, list[str]]

WRITABLE_FIELDS = ("name", "metrics", "filters", "range", "start", "end", "bucket")
# Read-only fields a client may send back from a GET; they are not part of what it changes.
IGNORED_FIELDS = ("id", "workspace", "created_by", "created_at", "updated_at")
FILTERS = ("workflow",)
NAME_MAX_LENGTH = Report._meta.get_field("name").max_length
RANGE_MAX_LENGTH = Report._meta.get_field("range").max_length
MAX_METRICS = 50

BODY_NOT_AN_OBJECT = "The body must be a JSON object."
UNKNOWN_FIELD = "Unknown field."
REQUIRED = "This field is required."
NAME_INVALID = f"A name of 1 to {NAME_MAX_LENGTH} characters, not only spaces."
NAME_TAKEN = "A report with this name exists in the workspace."
METRICS_INVALID = f"A list of 1 to {MAX_METRICS} distinct metric names."
FILTERS_INVALID = f"An object with at most these keys: {', '.join(FILTERS)}."
WORKFLOW_INVALID = "An id (a UUID) or null."
RANGE_INVALID = f"The name of a range (at most {RANGE_MAX_LENGTH} characters)."
MOMENT_INVALID = "An ISO 8601 date and time."
RANGE_OR_FIXED = "Give a range, or a start and an end, not both."
FIXED_NEEDS_BOTH = "A fixed range needs both start and end."
START_AFTER_END = "`start` must be before `end`."
BUCKET_INVALID = f"One of: {', '.join(Granularity.values)}, or null."


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = parse_datetime(value)
        except ValueError:  # well formed, but no such day or time
            return None
    else:
        return None
    if moment is None:
        return None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


def _metrics_valid(value: Any) -> bool:
    return (
        isinstance(value, list)
        and 0 < len(value) <= MAX_METRICS
        and all(isinstance(name, str) and name for name in value)
        and len(set(value)) == len(value)
    )


def _filters(value: Any, errors: Errors) -> dict:
    """The filters, normalised ({} or {"workflow": "<uuid>"})."""
    if not isinstance(value, dict) or set(value) - set(FILTERS):
        errors["filters"] = [FILTERS_INVALID]
        return {}
    workflow = value.get("workflow")
    if workflow is None:
        return {}
    try:
        return {"workflow": str(uuid.UUID(str(workflow)))}
    except ValueError:
        errors["filters.workflow"] = [WORKFLOW_INVALID]
        return {}


def _fields(data: Any, *, report: Report | None) -> dict:
    """The model fields a POST (report None) or PATCH body sets, checked; ValidationError names the bad ones."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": [BODY_NOT_AN_OBJECT]})
    errors: Errors = {name: [UNKNOWN_FIELD] for name in sorted(set(data) - {*WRITABLE_FIELDS, *IGNORED_FIELDS})}
    given = {name: data[name] for name in WRITABLE_FIELDS if name in data}
    if report is None:
        errors.update({name: [REQUIRED] for name in ("name", "metrics") if name not in given})
    fields: dict[str, Any] = {}
    if "name" in given:
        name = given["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_LENGTH:
            errors["name"] = [NAME_INVALID]
        fields["name"] = name
    if "metrics" in given:
        if not _metrics_valid(given["metrics"]):
            errors["metrics"] = [METRICS_INVALID]
        fields["metrics"] = given["metrics"]
    if "filters" in given:
        fields["filters"] = _filters(given["filters"], errors)
    if "bucket" in given:
        if given["bucket"] is not None and given["bucket"] not in Granularity.values:
            errors["bucket"] = [BUCKET_INVALID]
        fields["bucket"] = given["bucket"] or ""
    for name in ("start", "end"):
        if name in given:
            fields[name] = _moment(given[name])
            if fields[name] is None:
                errors[name] = [MOMENT_INVALID]
    if "range" in given:
        value = given["range"]
        if not isinstance(value, str) or not 0 < len(value) <= RANGE_MAX_LENGTH:
            errors["range"] = [RANGE_INVALID]
        elif "start" in given or "end" in given:
            errors["range"] = [RANGE_OR_FIXED]
        # A relative range replaces a fixed one.
        fields.update(range=value, start=None, end=None)
    elif "start" in given or "end" in given:
        fields["range"] = ""
    if errors:
        raise ValidationError(errors)
    return fields


def _span_errors(report: Report) -> Errors:
    """What is wrong with the report's range once the body is applied."""
    if report.range:
        return {}
    missing = [name for name in ("start", "end") if getattr(report, name) is None]
    if missing:
        return {name: [FIXED_NEEDS_BOTH] for name in missing}
    if report.start >= report.end:
        return {"start": [START_AFTER_END]}
    return {}


def _span_checked(report: Report) -> None:
    if errors := _span_errors(report):
        raise ValidationError(errors)


def _snapshot(report: Report) -> dict:
    snapshot = {name: getattr(report, name) for name in WRITABLE_FIELDS}
    for name in ("start", "end"):
        snapshot[name] = snapshot[name].isoformat() if snapshot[name] else None
    return snapshot


AUDITED = AuditedChanges("analytics_report", snapshot=_snapshot, name_taken=NAME_TAKEN, check=_span_checked)


def report_create(*, actor: User, workspace: Workspace, data: Any, request: AnyRequest | None = None) -> Report:
    """A new report of `workspace` from its body (see the module); editors, admins and owners.

    Raises Http404 for non-members, PermissionDenied for viewers, ValidationError naming the bad
    fields (a name in use in the workspace included)."""
    ensure_role(actor, workspace, Role.EDITOR)
    fields = _fields(data, report=None)
    return AUDITED.created(Report(workspace=workspace, created_by=actor, **fields), actor=actor, request=request)


def report_update(*, report: Report, actor: User, data: Any, request: AnyRequest | None = None) -> Report:
    """Change the fields the body names (PATCH); editors, admins and owners. Raises as report_create."""
    ensure_role(actor, report.workspace, Role.EDITOR)
    fields = _fields(data, report=report)
    return AUDITED.updated(report, fields, actor=actor, request=request)


def report_delete(*, report: Report, actor: User, request: AnyRequest | None = None) -> None:
    """Delete a report; editors, admins and owners."""
    ensure_role(actor, report.workspace, Role.EDITOR)
    AUDITED.deleted(report, actor=actor, request=request)
