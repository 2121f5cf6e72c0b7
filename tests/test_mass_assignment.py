"""Mass assignment: every POST/PUT/PATCH of the OpenAPI schema, sent a valid body plus a field it does not own.

For each operation a recipe gives a valid body (which must succeed on its own), then each forbidden
field is added to it in turn: an id, a foreign workspace or workflow, another user as creator or
owner, staff flags, a role, a status, audit hashes, API key parts, a secret, timestamps, a version
(see `injections`). Each attempt runs in a savepoint
that is rolled back, so every one starts from the same state. The request must be refused (4xx,
having changed nothing) or the field must have had no effect: the rows holding the injected value,
the rows in the foreign workspace and the staff accounts are counted as after the valid body alone,
and the answer shows the injected value only where the valid body's answer showed it too. A field
the operation's documented request body lets a client write is its own (a workflow's status, a
membership's role), except `id` and `workspace`, which are always tried.

A new writable endpoint fails here until it has a recipe.
"""

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import mfa
from accounts.models import ApiKey, User, Workspace
from notifications.models import Delivery
from tests.accounts.mfa_helpers import enrol, next_code
from tests.api_world import operations, request_fields
from tests.canary import canaries
from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory
from tests.notifications.browser import Browser
from workflows.engine import execute
from workflows.models import EngineDrain, Run, StepRun, Workflow
from workflows.services.run_control import run_pause
from workflows.services.runs import run_cancel, run_trigger
from workflows.services.workflows import workflow_create, workflow_delete, workflow_update

pytestmark = pytest.mark.django_db

WRITES = ("post", "put", "patch")
PROJECT_APPS = ("core", "accounts", "audit", "workflows", "analytics", "notifications")
MODELS = [model for model in apps.get_models() if model._meta.app_label in PROJECT_APPS]
# Fields whose injection is tried even where the operation documents them as writable: a client
# chooses a slug, never a primary key, and never another workspace.
ALWAYS_TRIED = ("id", "workspace")
INJECTED_ID = "3b2f6f2e-0000-4000-8000-00000000beef"
INJECTED_TIME = "2001-02-03T04:05:06Z"


@dataclass
class Scene:
    """Workspace A (the world, tests/api_world.py) with runs in every state the operations need."""

    world: dict
    foreign: Workspace
    waiting_run: Run
    review_run: Run
    cancelled_run: Run
    finished_run: Run
    deleted_workflow_id: uuid.UUID
    foreign_workflow: Workflow
    newcomer: User

    def __getattr__(self, name: str):  # the world's objects: scene.owner, scene.workflow, ...
        if name != "world" and name in self.world:
            return self.world[name]
        raise AttributeError(name)


@dataclass(frozen=True)
class Recipe:
    url: str
    body: dict
    client: APIClient
    # Fields it owns besides those its documented request body lists.
    own: frozenset[str] = field(default_factory=frozenset)


def owner(scene: Scene) -> APIClient:
    return client_for(scene.owner)


def staff(scene: Scene, *, draining: bool = False) -> APIClient:
    """A staff member's client (the engine's operators); with `draining`, the engine drains."""
    if draining:
        EngineDrain.objects.create()
    return client_for(UserFactory(is_staff=True))


def workflow_url(scene: Scene, rest: str = "") -> str:
    return f"/api/v3/workflows/{scene.workflow.pk}{rest}"


def enrolment_code(user: User) -> str:
    mfa.totp_enrolment_start(user=user)
    return next_code(user)


def mfa_challenge(user: User) -> dict:
    enrol(user)
    return {"mfa_token": mfa.token_login(user=user)["mfa_token"], "code": next_code(user)}


def dead(delivery: Delivery) -> Delivery:
    """The delivery, dead: only a dead or failed one is sent again."""
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.DEAD)
    return delivery


def browser_subscription() -> dict:
    """A browser's PushSubscription.toJSON(), at a public address literal: it passes the outbound rules
    without a DNS lookup."""
    browser = Browser()
    return {"endpoint": "https://8.8.8.8/push/new", "keys": {"p256dh": browser.p256dh, "auth": browser.auth_text}}


RECIPES: dict[tuple[str, str], Callable[[Scene], Recipe]] = {
    ("post", "/api/v3/analytics/insights/{id}/dismiss"): lambda s: Recipe(
        f"/api/v3/analytics/insights/{s.insight.pk}/dismiss", {}, owner(s)
    ),
    ("post", "/api/v3/auth/api-keys"): lambda s: Recipe(
        "/api/v3/auth/api-keys", {"name": "k", "scopes": ["read"]}, owner(s)
    ),
    ("post", "/api/v3/auth/sessions/revoke-all"): lambda s: Recipe("/api/v3/auth/sessions/revoke-all", {}, owner(s)),
    ("post", "/api/v3/auth/logout"): lambda s: Recipe(
        "/api/v3/auth/logout", {"refresh": str(RefreshToken.for_user(s.owner))}, APIClient()
    ),
    ("post", "/api/v3/auth/mfa/totp"): lambda s: Recipe("/api/v3/auth/mfa/totp", {}, owner(s)),
    # Every attempt is rolled back, the device's last used code too: one code confirms each time.
    ("post", "/api/v3/auth/mfa/totp/confirm"): lambda s: Recipe(
        "/api/v3/auth/mfa/totp/confirm", {"code": enrolment_code(s.owner)}, owner(s)
    ),
    # The mfa_token is spent in the cache, outside the rollback: only the valid body succeeds.
    ("post", "/api/v3/auth/token/mfa"): lambda s: Recipe(
        "/api/v3/auth/token/mfa", mfa_challenge(s.newcomer), APIClient()
    ),
    ("post", "/api/v3/auth/password"): lambda s: Recipe(
        "/api/v3/auth/password", {"old_password": PASSWORD, "new_password": "Another-Passw0rd-42"}, owner(s)
    ),
    ("post", "/api/v3/auth/register"): lambda s: Recipe(
        "/api/v3/auth/register", {"email": "new@example.com", "password": "Sturdy-Passw0rd-1", "name": "N"}, APIClient()
    ),
    ("post", "/api/v3/auth/token"): lambda s: Recipe(
        "/api/v3/auth/token", {"email": s.owner.email, "password": PASSWORD}, APIClient()
    ),
    ("post", "/api/v3/auth/token/refresh"): lambda s: Recipe(
        "/api/v3/auth/token/refresh", {"refresh": str(RefreshToken.for_user(s.owner))}, APIClient()
    ),
    ("post", "/api/v3/credentials"): lambda s: Recipe(
        "/api/v3/credentials", {"name": "new", "kind": "http_bearer", "value": {"token": "tok"}}, owner(s)
    ),
    ("patch", "/api/v3/credentials/{id}"): lambda s: Recipe(
        f"/api/v3/credentials/{s.credential.pk}", {"name": "renamed"}, owner(s)
    ),
    ("patch", "/api/v3/event-triggers/{trigger_id}"): lambda s: Recipe(
        f"/api/v3/event-triggers/{s.trigger.pk}", {"enabled": False}, owner(s)
    ),
    ("put", "/api/v3/nodes/{id}"): lambda s: Recipe(
        f"/api/v3/nodes/{s.workflow.nodes.get(key='doc').pk}",
        {"key": "doc", "type": "document", "prompt": "Hello"},
        owner(s),
    ),
    ("patch", "/api/v3/nodes/{id}"): lambda s: Recipe(
        f"/api/v3/nodes/{s.workflow.nodes.get(key='doc').pk}", {"title": "Renamed"}, owner(s)
    ),
    ("post", "/api/v3/notifications/channels"): lambda s: Recipe(
        "/api/v3/notifications/channels", {"name": "new", "kind": "in_app"}, owner(s)
    ),
    ("patch", "/api/v3/notifications/channels/{id}"): lambda s: Recipe(
        f"/api/v3/notifications/channels/{s.channel.pk}", {"name": "renamed"}, owner(s)
    ),
    ("post", "/api/v3/notifications/channels/{id}/test"): lambda s: Recipe(
        f"/api/v3/notifications/channels/{s.channel.pk}/test", {}, owner(s)
    ),
    ("post", "/api/v3/notifications/deliveries/{id}/resend"): lambda s: Recipe(
        f"/api/v3/notifications/deliveries/{dead(s.delivery).pk}/resend", {}, owner(s)
    ),
    ("post", "/api/v3/budgets"): lambda s: Recipe(
        "/api/v3/budgets", {"name": "new", "metric": "cost", "period": "month", "limit": "10"}, owner(s)
    ),
    ("patch", "/api/v3/budgets/{id}"): lambda s: Recipe(
        f"/api/v3/budgets/{s.budget.pk}", {"name": "renamed"}, owner(s)
    ),
    ("post", "/api/v3/analytics/reports"): lambda s: Recipe(
        "/api/v3/analytics/reports", {"name": "new", "metrics": ["runs"]}, owner(s)
    ),
    ("patch", "/api/v3/analytics/reports/{id}"): lambda s: Recipe(
        f"/api/v3/analytics/reports/{s.report.pk}", {"name": "renamed"}, owner(s)
    ),
    ("post", "/api/v3/notifications/rules"): lambda s: Recipe(
        "/api/v3/notifications/rules", {"name": "new", "events": ["run.failed"], "roles": ["owner"]}, owner(s)
    ),
    ("patch", "/api/v3/notifications/rules/{id}"): lambda s: Recipe(
        f"/api/v3/notifications/rules/{s.rule.pk}", {"name": "renamed"}, owner(s)
    ),
    ("post", "/api/v3/notifications/templates"): lambda s: Recipe(
        "/api/v3/notifications/templates", {"name": "new", "body": "Hi"}, owner(s)
    ),
    ("patch", "/api/v3/notifications/templates/{id}"): lambda s: Recipe(
        f"/api/v3/notifications/templates/{s.template.pk}", {"name": "renamed"}, owner(s)
    ),
    ("post", "/api/v3/notifications/templates/preview"): lambda s: Recipe(
        "/api/v3/notifications/templates/preview", {"body": "Hi"}, owner(s)
    ),
    ("post", "/api/v3/notifications/push-subscriptions"): lambda s: Recipe(
        "/api/v3/notifications/push-subscriptions",
        browser_subscription(),
        owner(s),
    ),
    ("post", "/api/v3/notifications/{id}/read"): lambda s: Recipe(
        f"/api/v3/notifications/{s.notification.pk}/read", {}, owner(s)
    ),
    ("post", "/api/v3/notifications/read-all"): lambda s: Recipe("/api/v3/notifications/read-all", {}, owner(s)),
    ("put", "/api/v3/notifications/preferences"): lambda s: Recipe(
        "/api/v3/notifications/preferences",
        {"muted_events": ["run.succeeded"], "muted_kinds": ["email"], "quiet_hours": None, "timezone": "UTC"},
        owner(s),
    ),
    ("post", "/api/v3/runs/{id}/cancel"): lambda s: Recipe(f"/api/v3/runs/{s.run.pk}/cancel", {}, owner(s)),
    ("post", "/api/v3/runs/{id}/pause"): lambda s: Recipe(f"/api/v3/runs/{s.waiting_run.pk}/pause", {}, owner(s)),
    ("post", "/api/v3/runs/{id}/resume"): lambda s: Recipe(
        f"/api/v3/runs/{run_pause(run=s.waiting_run, actor=s.owner).pk}/resume", {}, owner(s)
    ),
    ("post", "/api/v3/workflows/{id}/runs-pause"): lambda s: Recipe(workflow_url(s, "/runs-pause"), {}, owner(s)),
    ("post", "/api/v3/workspaces/{id}/runs-pause"): lambda s: Recipe(
        f"/api/v3/workspaces/{s.workspace.pk}/runs-pause", {}, owner(s)
    ),
    ("post", "/api/v3/engine/drain"): lambda s: Recipe("/api/v3/engine/drain", {"reason": "deploy"}, staff(s)),
    ("post", "/api/v3/engine/resume"): lambda s: Recipe("/api/v3/engine/resume", {}, staff(s, draining=True)),
    ("post", "/api/v3/runs/{id}/retry"): lambda s: Recipe(f"/api/v3/runs/{s.cancelled_run.pk}/retry", {}, owner(s)),
    ("post", "/api/v3/runs/{id}/steps/{node_key}/approve"): lambda s: Recipe(
        f"/api/v3/runs/{s.waiting_run.pk}/steps/ok/approve", {"approved": True, "comment": "fine"}, owner(s)
    ),
    ("post", "/api/v3/runs/{id}/steps/{node_key}/request-changes"): lambda s: Recipe(
        f"/api/v3/runs/{s.review_run.pk}/steps/review/request-changes", {"comment": "Shorter"}, owner(s)
    ),
    ("post", "/api/v3/runs/{id}/steps/{node_key}/regenerate"): lambda s: Recipe(
        f"/api/v3/runs/{s.finished_run.pk}/steps/doc/regenerate", {"prompt": "Again"}, owner(s)
    ),
    ("patch", "/api/v3/schedules/{id}"): lambda s: Recipe(
        f"/api/v3/schedules/{s.schedule.pk}", {"cron": "5 * * * *"}, owner(s)
    ),
    ("post", "/api/v3/schedules/{id}/backfill"): lambda s: Recipe(
        f"/api/v3/schedules/{s.schedule.pk}/backfill",
        {
            "start": (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0).isoformat(),
            "end": (timezone.now() - timedelta(hours=1)).isoformat(),
        },
        owner(s),
    ),
    ("post", "/api/v3/schedules/{id}/trigger-now"): lambda s: Recipe(
        f"/api/v3/schedules/{s.schedule.pk}/trigger-now", {}, owner(s)
    ),
    ("post", "/api/v3/system/worker-pings"): lambda s: Recipe("/api/v3/system/worker-pings", {"delay_ms": 0}, owner(s)),
    ("post", "/api/v3/trigger"): lambda s: Recipe(
        "/api/v3/trigger", {"workflow_id": str(s.workflow.pk), "payload": {}}, owner(s)
    ),
    ("post", "/api/v3/webhooks/{hook_id}/rotate"): lambda s: Recipe(
        f"/api/v3/webhooks/{s.hook.pk}/rotate", {}, owner(s)
    ),
    ("patch", "/api/v3/webhooks/{hook_id}"): lambda s: Recipe(
        f"/api/v3/webhooks/{s.hook.pk}", {"allowed_ips": ["192.0.2.0/24"]}, owner(s)
    ),
    ("post", "/api/v3/workflows"): lambda s: Recipe("/api/v3/workflows", {"name": "New"}, owner(s)),
    ("put", "/api/v3/workflows/{id}"): lambda s: Recipe(workflow_url(s), {"name": "Replaced"}, owner(s)),
    ("patch", "/api/v3/workflows/{id}"): lambda s: Recipe(workflow_url(s), {"description": "Changed"}, owner(s)),
    ("post", "/api/v3/workflows/{id}/nodes"): lambda s: Recipe(
        workflow_url(s, "/nodes"), {"title": "Another", "content": "More"}, owner(s)
    ),
    ("post", "/api/v3/workflows/{id}/restore"): lambda s: Recipe(
        f"/api/v3/workflows/{s.deleted_workflow_id}/restore", {}, owner(s)
    ),
    ("post", "/api/v3/workflows/{id}/runs"): lambda s: Recipe(workflow_url(s, "/runs"), {"input": {}}, owner(s)),
    ("post", "/api/v3/workflows/{id}/runs/batch"): lambda s: Recipe(
        workflow_url(s, "/runs/batch"), {"inputs": [{}, {}]}, owner(s)
    ),
    ("post", "/api/v3/workflows/{id}/versions/{number}/restore"): lambda s: Recipe(
        workflow_url(s, "/versions/1/restore"), {}, owner(s)
    ),
    ("post", "/api/v3/workflows/{workflow_id}/event-triggers"): lambda s: Recipe(
        workflow_url(s, "/event-triggers"), {"source_workflow": str(s.source.pk), "on": "failed"}, owner(s)
    ),
    ("post", "/api/v3/workflows/{workflow_id}/schedules"): lambda s: Recipe(
        workflow_url(s, "/schedules"), {"cron": "15 * * * *"}, owner(s)
    ),
    ("post", "/api/v3/workflows/{workflow_id}/webhooks"): lambda s: Recipe(
        workflow_url(s, "/webhooks"), {"dedupe_header": "X-Delivery"}, owner(s)
    ),
    ("post", "/api/v3/workflows/bulk"): lambda s: Recipe(
        "/api/v3/workflows/bulk", {"action": "pause", "ids": [str(s.workflow.pk)]}, owner(s)
    ),
    # A dwc-workflow/1 document, which carries its own status (the schema documents the body as any object).
    ("post", "/api/v3/workflows/import"): lambda s: Recipe(
        "/api/v3/workflows/import",
        {"format": "dwc-workflow/1", "name": "Imported", "nodes": []},
        owner(s),
        own=frozenset({"status"}),
    ),
    ("post", "/api/v3/workspaces"): lambda s: Recipe("/api/v3/workspaces", {"name": "Another"}, owner(s)),
    ("patch", "/api/v3/workspaces/{id}"): lambda s: Recipe(
        f"/api/v3/workspaces/{s.workspace.pk}", {"name": "Renamed"}, owner(s)
    ),
    ("post", "/api/v3/workspaces/{workspace_pk}/members"): lambda s: Recipe(
        f"/api/v3/workspaces/{s.workspace.pk}/members", {"email": s.newcomer.email, "role": "editor"}, owner(s)
    ),
    ("patch", "/api/v3/workspaces/{workspace_pk}/members/{user_id}"): lambda s: Recipe(
        f"/api/v3/workspaces/{s.workspace.pk}/members/{s.viewer.pk}", {"role": "editor"}, owner(s)
    ),
}


def injections(scene: Scene) -> list[tuple[str, object]]:
    """(field, value) pairs, each sent on its own; `status` twice, as a run's and as a workflow's."""
    return [
        ("id", INJECTED_ID),
        ("workspace", str(scene.foreign.pk)),
        ("created_by", str(scene.outsider.pk)),
        ("user", str(scene.outsider.pk)),
        ("workflow", str(scene.foreign_workflow.pk)),
        ("is_staff", True),
        ("is_superuser", True),
        ("role", "owner"),
        ("status", "succeeded"),
        ("status", "archived"),
        ("hash", "ab" * 32),
        ("prev_hash", "cd" * 32),
        ("prefix", "dwc_inject00"),
        ("key", "dwc_inject00_" + "k" * 43),
        ("key_hash", "ef" * 32),
        # Different in every test: the canary registry, which says whether it was encrypted, is the session's.
        ("secret", f"mass-assigned-secret-{uuid.uuid4().hex}"),
        ("last_used_at", INJECTED_TIME),
        ("created_at", INJECTED_TIME),
        ("revoked_at", INJECTED_TIME),
        ("deleted_at", INJECTED_TIME),
        ("is_personal", True),
        ("version", 99),
    ]


def stored(name: str, value: object) -> dict[str, int]:
    """How many rows of each model hold `value` in a field called `name` (or, for `key`, its hash)."""
    counts = {}
    for model in MODELS:
        try:
            model_field = model._meta.get_field(name)
            if not model_field.concrete:  # a reverse relation
                continue
            python_value = model_field.to_python(value)
        except (FieldDoesNotExist, ValidationError):  # no such field, or a value it could never hold
            continue
        counts[f"{model.__name__}.{name}"] = model.objects.filter(**{name: python_value}).count()
    if name == "key":
        counts["ApiKey.key_hash of the key"] = ApiKey.objects.filter(
            key_hash=hashlib.sha256(str(value).encode()).hexdigest()
        ).count()
    if name == "secret":
        counts["encrypted as a secret"] = int(canaries.knows(str(value)))
    return counts


def footprint(foreign: Workspace) -> dict[str, int]:
    """Rows in the foreign workspace, and staff accounts: no injection may add to either."""
    counts = {
        "staff users": User.objects.filter(is_staff=True).count(),
        "superusers": User.objects.filter(is_superuser=True).count(),
    }
    for model in MODELS:
        names = {model_field.name for model_field in model._meta.concrete_fields}
        path = "workspace" if "workspace" in names else "workflow__workspace" if "workflow" in names else None
        if path:
            counts[f"{model.__name__} in the foreign workspace"] = model.objects.filter(**{path: foreign}).count()
    return counts


def state(scene: Scene, name: str, value: object) -> dict[str, int]:
    return {**stored(name, value), **footprint(scene.foreign)}


def shown(answer, name: str, value: object, scene: Scene) -> bool:
    """Whether the JSON answer shows `value` as `name` on one of its objects (or a list's)."""
    if not answer.get("Content-Type", "").startswith("application/json") or not answer.content:
        return False
    data = answer.json()
    objects = data if isinstance(data, list) else [data, *data.get("results", [])] if isinstance(data, dict) else []
    spellings = {value, str(value)}
    if name in ("created_by", "user"):
        spellings.add(scene.outsider.email)
    for item in objects:
        if isinstance(item, dict):
            shown_value = item.get(name)
            if isinstance(shown_value, dict):  # a nested object: {"id": ..., "email": ...}
                shown_value = shown_value.get("id")
            if isinstance(shown_value, str | bool | int) and shown_value in spellings:
                return True
    return False


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Hashing is not what is tested here, and Argon2 would make each user and login cost a tenth of a second."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def scene(world) -> Scene:
    owner_user, workspace = world["owner"], world["workspace"]
    # The world's run: its approval step waits (what a worker does when it runs the step).
    waiting = world["run"]
    step = waiting.steps.get(node_key="ok")
    execute.execute_step(step.pk, step.attempt)
    cancelled, _ = run_trigger(workflow=world["workflow"], input={}, trigger="api", actor=owner_user)
    run_cancel(run=cancelled, actor=owner_user)
    documents = workflow_create(
        actor=owner_user,
        workspace=workspace,
        data={"name": "Docs", "status": "active", "nodes": [{"key": "doc", "type": "document", "prompt": "Hi"}]},
    )
    finished, _ = run_trigger(workflow=documents, input={}, trigger="api", actor=owner_user)
    step = finished.steps.get(node_key="doc")
    execute.execute_step(step.pk, step.attempt)
    finished.refresh_from_db()
    # A run whose approval reviews its document, waiting (changes may be asked for).
    reviewed = workflow_create(
        actor=owner_user,
        workspace=workspace,
        data={
            "name": "Reviewed",
            "status": "active",
            "nodes": [
                {"key": "doc", "type": "document", "prompt": "Hi"},
                {"key": "review", "type": "approval", "config": {"documents": ["doc"]}},
            ],
        },
    )
    review_run, _ = run_trigger(workflow=reviewed, input={}, trigger="api", actor=owner_user)
    for key in ("doc", "review"):
        step = review_run.steps.get(node_key=key)
        execute.execute_step(step.pk, step.attempt)
    assert review_run.steps.get(node_key="review").status == StepRun.Status.WAITING
    assert waiting.steps.get(node_key="ok").status == StepRun.Status.WAITING
    assert finished.status == Run.Status.SUCCEEDED
    gone = workflow_create(actor=owner_user, workspace=workspace, data={"name": "Gone", "nodes": []})
    workflow_delete(workflow=gone, actor=owner_user)
    workflow_update(workflow=world["workflow"], actor=owner_user, data={"description": "v2"}, partial=True)
    foreign = Workspace.objects.get(memberships__user=world["outsider"])
    return Scene(
        world=world,
        foreign=foreign,
        foreign_workflow=workflow_create(actor=world["outsider"], workspace=foreign, data={"name": "B's", "nodes": []}),
        waiting_run=waiting,
        review_run=review_run,
        cancelled_run=cancelled,
        finished_run=finished,
        deleted_workflow_id=gone.pk,
        newcomer=UserFactory(),
    )


@pytest.mark.parametrize(("path", "method"), operations(WRITES))
def test_a_field_the_operation_does_not_own_is_refused_or_has_no_effect(scene, path, method):
    make = RECIPES.get((method, path))
    assert make is not None, (
        f"{method.upper()} {path} has no valid-body recipe: add one to RECIPES in tests/test_mass_assignment.py"
    )
    recipe = make(scene)
    own = request_fields(path, method) | recipe.own
    tried = [(name, value) for name, value in injections(scene) if name in ALWAYS_TRIED or name not in own]
    before = {(name, value): state(scene, name, value) for name, value in tried}

    def send(body: dict, measured: list[tuple[str, object]]):
        with transaction.atomic():
            answer = getattr(recipe.client, method)(recipe.url, body, format="json")
            after = {(name, value): state(scene, name, value) for name, value in measured}
            transaction.set_rollback(True)
        return answer, after

    plain, plain_after = send(recipe.body, tried)
    assert 200 <= plain.status_code < 300, f"the recipe's valid body failed: {plain.status_code} {plain.content[:500]}"

    failures = []
    for name, value in tried:
        answer, after = send({**recipe.body, name: value}, [(name, value)])
        where = f"{method.upper()} {path} with {name}={value!r}: {answer.status_code}"
        key = (name, value)
        if answer.status_code >= 500:
            failures.append(f"{where}, a server error")
        elif answer.status_code >= 400:
            if after[key] != before[key]:
                failures.append(f"{where}, refused but wrote: {changed(before[key], after[key])}")
        elif after[key] != plain_after[key]:
            failures.append(f"{where}, and it took effect: {changed(plain_after[key], after[key])}")
        elif shown(answer, name, value, scene) and not shown(plain, name, value, scene):
            failures.append(f"{where}, and the answer shows the injected value")
    assert not failures, "\n".join(failures)


def changed(expected: dict, actual: dict) -> str:
    return ", ".join(f"{key} {expected[key]} -> {actual[key]}" for key in expected if expected[key] != actual[key])


def test_every_writable_operation_of_the_schema_is_covered():
    writes = operations(WRITES)
    assert len(writes) >= 38
    assert set(RECIPES) == {(method, path) for path, method in writes}, "RECIPES names an operation the API lost"
