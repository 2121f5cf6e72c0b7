"""Schemathesis against the OpenAPI schema, as an ordinary user: every check it has, valid and invalid
data, and the stateful phase (chains of operations linked through the ids they return).

What the checks hold the API to: no 5xx; every answer's status, content type, headers and body as the
schema documents them; data the schema allows is accepted and data it forbids refused (a 4xx); a
method the schema does not list is a 405 with Allow; authentication is enforced; a deleted resource
is gone and a created one is there. The user owns a workspace with a workflow, so that ids in paths
hit real objects too, and the stateful phase creates, reads, changes and deletes its own.

Bounded and deterministic (examples per operation and scenarios fixed, derandomized), so it runs in
the suite.
"""

import re
from zoneinfo import available_timezones

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework_simplejwt.tokens import AccessToken
from schemathesis import GenerationMode
from schemathesis.generation.stateful.state_machine import DEFAULT_STATE_MACHINE_SETTINGS
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts.models import Workspace
from core.openapi import TIME_ZONE_FORMAT
from tests.canary import canaries
from tests.factories import UserFactory
from workflows.models import Run, Workflow
from workflows.services.runs import run_cancel, run_trigger
from workflows.services.workflows import workflow_create

EXAMPLES_PER_OPERATION = 5
STATEFUL_SCENARIOS = 20

schemathesis.openapi.format(TIME_ZONE_FORMAT, st.sampled_from(sorted(available_timezones())))
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
schema.config.generation.update(modes=list(GenerationMode))
# Replaced by positive_data_accepted_unless_beyond_the_schema below.
schema.config.checks.update(excluded_check_names=["positive_data_acceptance"])

# A 400 for schema-valid data is held against the API unless it names only fields whose rule no JSON
# Schema can state: that a referenced object exists and belongs to the caller, that a secret is the
# right one, what another request made (a name already taken), the clock, or rules between the
# objects of a graph. Schemathesis draws such values at random, so its positive_data_acceptance
# reports these as failures although the schema documents the field as well as a schema can (a false
# positive). Everything else a schema can say, it says (core.openapi, the serializers).
PATH_INDEX = r"(\d+\.)?"  # an import of several documents prefixes each error with its index
REFERENCE = "names another object, which must exist in the caller's workspace"
CREDENTIAL = "names a credential of the workspace, of a kind the channel takes"
TEMPLATES = "templates that parse (the sandboxed template language), JSON formats as objects or arrays"
LOCKOUT = "must include the caller's own address, or saving it would lock them out"
MFA_FIRST = "true only once the caller has multi-factor authentication on, or saving it would lock them out"
GRAPH = (
    "a workflow's graph: dependencies naming nodes of the same body, no cycle, credentials and sub-workflows "
    "that exist in the workspace, templates that parse, a type inferred from a prompt or content"
)
REPORT_BUCKET = (
    "kept for the range and at most 2,000 points of it (depends on the range, the rollups' retention settings and, "
    "for a fixed range, the clock)"
)
BEYOND_THE_SCHEMA = {
    "POST /api/v3/auth/password": {
        "old_password": "must be the caller's current password",
        "new_password": "Django's password validators: not common, not like the user's name or email",
    },
    "POST /api/v3/auth/register": {
        "email": "must not be registered already",
        "password": "Django's password validators: not common, not like the user's name or email",
    },
    "POST /api/v3/auth/api-keys": {"expires_at": "must be in the future", "workspace": REFERENCE},
    "POST /api/v3/credentials": {"workspace": REFERENCE, "name": "must not be taken in the workspace"},
    "PATCH /api/v3/credentials/{id}": {
        "name": "must not be taken in the workspace",
        r"value(\..*)?": "without a kind, a value's keys are those of the credential's current kind",
    },
    "POST /api/v3/workflows": {"workspace": REFERENCE, r"(nodes|steps|edges)(\..*)?": GRAPH, "slug": "unique"},
    "PUT /api/v3/workflows/{id}": {r"(nodes|steps|edges)(\..*)?": GRAPH, "slug": "unique"},
    "PATCH /api/v3/workflows/{id}": {r"(nodes|steps|edges)(\..*)?": GRAPH, "slug": "unique"},
    "POST /api/v3/workflows/import": {
        "workspace": REFERENCE,
        rf"{PATH_INDEX}(nodes|steps|edges)(\..*)?": GRAPH,
        rf"{PATH_INDEX}slug": "unique in the workspace",
    },
    "POST /api/v3/workflows/{id}/nodes": {r"nodes(\..*)?": GRAPH},
    "PUT /api/v3/nodes/{id}": {r"nodes(\..*)?": GRAPH},
    "PATCH /api/v3/nodes/{id}": {r"nodes(\..*)?": GRAPH},
    "POST /api/v3/workflows/bulk": {r"ids\..*": REFERENCE},
    "POST /api/v3/workflows/{workflow_id}/event-triggers": {"source_workflow": REFERENCE},
    "PATCH /api/v3/event-triggers/{trigger_id}": {"source_workflow": REFERENCE},
    "POST /api/v3/workspaces/{workspace_pk}/members": {"email": "must be a registered user's"},
    "POST /api/v3/schedules/{id}/backfill": {
        "start|end": "start before end, not in the future, and not more slots than DWC_SCHEDULE_MAX_CATCHUP "
        "(JSON Schema compares no two values and reads no clock)"
    },
    "POST /api/v3/notifications/channels": {
        "workspace": REFERENCE,
        "credential": CREDENTIAL,
        "name": "must not be taken in the workspace",
        r"config(\..*)?": "follows the JSON Schema of the body's kind (notifications.channels), checked by the service",
    },
    "PATCH /api/v3/notifications/channels/{id}": {
        "name": "must not be taken in the workspace",
        "credential": CREDENTIAL,
        r"config(\..*)?": "follows the schema of the channel's kind, which a PATCH does not carry",
    },
    "PUT /api/v3/notifications/preferences": {
        "quiet_hours": "its start and end must differ (JSON Schema compares no two values)",
    },
    "POST /api/v3/notifications/rules": {
        "workspace": REFERENCE,
        "channels|members|template": REFERENCE,
        "name": "must not be taken in the workspace",
        "member_kinds": "members and roles are notified by at least one kind",
    },
    "PATCH /api/v3/notifications/rules/{id}": {
        "channels|members|template": REFERENCE,
        "name": "must not be taken in the workspace",
        "member_kinds": "members and roles are notified by at least one kind",
    },
    "POST /api/v3/notifications/templates": {
        "workspace": REFERENCE,
        "name": "must not be taken in the workspace",
        r"(subject|body|formats)(\..*)?": TEMPLATES,
    },
    "PATCH /api/v3/notifications/templates/{id}": {
        "name": "must not be taken in the workspace",
        r"(subject|body|formats)(\..*)?": TEMPLATES,
    },
    "POST /api/v3/notifications/templates/preview": {
        "workspace": REFERENCE,
        r"(subject|body|formats)(\..*)?": TEMPLATES,
        "non_field_errors": "renders with the sample event: names it lacks fail (strict undefined)",
    },
    "POST /api/v3/notifications/push-subscriptions": {
        "endpoint": "the push service's host must resolve to an address the outbound rules allow",
        r"keys\.p256dh": "must be a point on the P-256 curve",
    },
    "GET /api/v3/analytics/overview": {"from": "before `to` (JSON Schema compares no two values)"},
    "GET /api/v3/analytics/timeseries": {
        "from": "before `to` (JSON Schema compares no two values)",
        "bucket": "kept for the range and at most 2,000 points of it (depends on the range and the clock)",
        "tz": "a name in the server's time zone database (600 names: not listed in the schema)",
        "metric": "one the group_by splits (depends on group_by)",
    },
    "GET /api/v3/analytics/breakdown": {"from": "before `to` (JSON Schema compares no two values)"},
    "GET /api/v3/analytics/nodes": {"from": "before `to` (JSON Schema compares no two values)"},
    "GET /api/v3/analytics/workflows/{workflow_id}": {"from": "before `to` (JSON Schema compares no two values)"},
    "POST /api/v3/analytics/reports": {
        "workspace": REFERENCE,
        "name": "must not be taken in the workspace",
        "start": "before `end` (JSON Schema compares no two values)",
        "bucket": REPORT_BUCKET,
    },
    "PATCH /api/v3/analytics/reports/{id}": {
        "name": "must not be taken in the workspace",
        "start|end": "a fixed range needs both ends, `start` before `end`: with the report's own, which a PATCH "
        "does not carry (and JSON Schema compares no two values)",
        "bucket": REPORT_BUCKET,
    },
    "GET /api/v3/analytics/reports/{id}/run": {
        "bucket": "the report's bucket, kept for its fixed range when it runs (depends on the clock)",
        "start": "the report's fixed range, at most 2,000 weeks",
    },
    "POST /api/v3/budgets": {
        "workspace": REFERENCE,
        "workflow": REFERENCE,
        "name": "must not be taken in the workspace",
    },
    "PATCH /api/v3/budgets/{id}": {"workflow": REFERENCE, "name": "must not be taken in the workspace"},
    "GET /api/v3/budgets/{id}/usage": {
        "run": "required by a run budget (whose usage is per run), and a run of its workspace (and workflow)",
    },
    "GET /api/v3/analytics/export": {
        "from": "before `to` and at most 2,000 weeks before it (JSON Schema compares no two values)",
        "bucket": "kept for the range and at most 2,000 points of it (depends on the range and the clock)",
    },
    "POST /api/v3/workspaces": {
        "allowed_ips": (LOCKOUT, "does not include your current address"),
        "mfa_required": (MFA_FIRST, "Turn on multi-factor authentication for your own account"),
    },
    "PATCH /api/v3/workspaces/{id}": {
        "allowed_ips": (LOCKOUT, "does not include your current address"),
        "mfa_required": (MFA_FIRST, "Turn on multi-factor authentication for your own account"),
    },
}


@schemathesis.check
def positive_data_accepted_unless_beyond_the_schema(ctx, response, case):
    """schemathesis' positive_data_acceptance, less the refusals of BEYOND_THE_SCHEMA."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        excused = BEYOND_THE_SCHEMA.get(case.operation.label, {})
        errors = _problem_errors(response) if response.status_code == 400 else {}
        if not errors or not all(_excused(excused, name, messages) for name, messages in errors.items()):
            raise
        return None


def _excused(excused: dict, name: str, messages: list[str]) -> bool:
    for field, reason in excused.items():
        wanted = reason[1] if isinstance(reason, tuple) else ""  # (reason, a pattern its messages match)
        if re.fullmatch(field, name) and all(re.search(wanted, message) for message in messages):
            return True
    return False


def _problem_errors(response) -> dict[str, list[str]]:
    try:
        return dict(response.json().get("errors", {}))
    except (ValueError, AttributeError):
        return {}


# The bearer token of the test's user, handed to every case as the schema's jwtAuth.
current = {}


@schema.auth(refresh_interval=None)
class BearerToken:
    def get(self, case, context):
        return current.get("token")

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture
def api_user(db, monkeypatch):
    # The fuzzer stores random strings as secrets (credential values) and sends the same strings again
    # as names, paths and queries, which the answers repeat: the canary (tests/canary.py) would read
    # that as a leak. It still searches these answers for the rest of the suite's secrets and for
    # password hashes; the secrets the API makes are the canary tests' own subject.
    monkeypatch.setattr(canaries, "register", lambda value, kind: None)
    # Requests go through the WSGI handler, whose signals would close the test's connection
    # (and its transaction) after each one; Django's test client disconnects them the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        user = UserFactory()
        workspace = Workspace.objects.get(memberships__user=user)
        document = {"key": "doc", "type": "document", "prompt": "Hi"}
        workflow_create(actor=user, workspace=workspace, data={"name": "W", "status": "active", "nodes": [document]})
        current["token"] = str(AccessToken.for_user(user))
        yield user
    finally:
        current.clear()
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


HYPOTHESIS = {"derandomize": True, "deadline": None, "suppress_health_check": list(HealthCheck)}


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, **HYPOTHESIS)
def test_every_operation_answers_as_its_schema_says(case, api_user):
    case.call_and_validate()


class Scenarios(schema.as_state_machine()):
    """Each scenario starts from the same database (the fixture's): what one deleted, the next still
    finds. Hypothesis draws a scenario's steps from the answers of the ones before, so they must not
    depend on what earlier scenarios did, or it reports its generation as flaky."""

    def setup(self):
        self.savepoint = transaction.savepoint()

    def teardown(self):
        transaction.savepoint_rollback(self.savepoint)


@pytest.mark.django_db
def test_chains_of_operations_answer_as_the_schema_says(api_user):
    # Schemathesis' own settings for state machines: no shrinking, scenarios of a few steps.
    Scenarios.run(settings=settings(DEFAULT_STATE_MACHINE_SETTINGS, max_examples=STATEFUL_SCENARIOS, derandomize=True))


@pytest.mark.django_db
def test_a_runs_event_stream_is_what_its_schema_says(api_user):
    """GET runs/{id}/events as text/event-stream: schemathesis reads the stream and holds its content
    type and each event (id, event, and data holding a RunEvent) to the schema (a WSGI server sends
    the events logged so far and ends the stream, workflows.sse)."""
    workflow = Workflow.objects.get(workspace__memberships__user=api_user)
    run, _ = run_trigger(workflow=workflow, input={}, trigger=Run.Trigger.API, actor=api_user)
    run_cancel(run=run, actor=api_user)
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {current['token']}"}
    case = schema["/api/v3/runs/{id}/events"]["GET"].Case(path_parameters={"id": str(run.pk)}, headers=headers)
    response = case.call_and_validate()
    assert (response.status_code, response.headers["content-type"]) == (200, ["text/event-stream"])
    frames = [frame.split("\n") for frame in response.text.split("\n\n") if frame.startswith("id: ")]
    assert [frame[0] for frame in frames] == [f"id: {seq}" for seq in range(1, len(frames) + 1)]
    assert (frames[0][1], frames[-1][1]) == ("event: run.created", "event: run.cancelled")
