"""What the API shows of a workflow (GET workflows/{id}), of a workflow in a list (GET workflows) and
of a run (GET runs/{id}), cached under the digest of what each is made from (workflows.fingerprints)
in a core.content_cache: never stale, so never invalidated. Access is not cached: every read checks
the caller's first (the details their role, the list its query of the caller's workflows)."""

import hashlib
import inspect
import json
from collections.abc import Callable

from rest_framework.renderers import JSONRenderer

from accounts.models import User
from core.content_cache import ContentCache
from workflows import fingerprints, selectors
from workflows.api import serializers
from workflows.specs import NODE_VALUE_FIELDS, SETTINGS_DEFAULTS


def _made_by() -> str:
    """What shapes a display besides the rows: the serializers' code and the defaults they fill in."""
    parts = [inspect.getsource(serializers), repr(SETTINGS_DEFAULTS), repr(NODE_VALUE_FIELDS)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


workflow_displays = ContentCache("workflow", _made_by)
workflow_rows = ContentCache("workflow-row", _made_by)
run_displays = ContentCache("run", _made_by)


def workflow_display(user: User, workflow_id) -> dict:
    """The workflow's display, if `user` may read it (Http404 and PermissionDenied as workflow_get)."""

    def make() -> tuple[str, dict]:
        workflow, fingerprint = selectors.workflow_display_and_fingerprint(user, workflow_id)
        return fingerprint, _json_ready(serializers.WorkflowSerializer(workflow).data)

    return _cached(workflow_displays, fingerprints.workflow_fingerprint(user, workflow_id), make)


def run_display(user: User, run_id) -> dict:
    """The run's display with its steps, if `user` may read it (Http404 and PermissionDenied as run_get)."""

    def make() -> tuple[str, dict]:
        run, fingerprint = selectors.run_display_and_fingerprint(user, run_id)
        return fingerprint, _json_ready(serializers.RunDetailSerializer(run).data)

    return _cached(run_displays, fingerprints.run_fingerprint(user, run_id), make)


def _cached(displays: ContentCache, fingerprint: str, make: Callable[[], tuple[str, dict]]) -> dict:
    display = displays.get(fingerprint)
    if display is None:
        # Made in a snapshot of its own, with the digest of that snapshot's state: the rows may have
        # changed since `fingerprint` was read.
        fingerprint, display = make()
        displays.set(fingerprint, display)
    return display


def _json_ready(data):
    """The serializer's output as the JSON renderer writes it, read back: plain dicts (not DRF's
    ReturnDict, which holds the serializer) whose UUIDs and dates are strings already, so rendering a
    cached display calls no encoder hook per value."""
    return json.loads(JSONRenderer().render(data))


def workflow_list_rows(page: list[tuple]) -> list[dict]:
    """The list rows of a page of (id, row fingerprint) pairs, from a query of the caller's workflows
    (fingerprints.with_row_fingerprint), in its order."""
    found = workflow_rows.get_many([fingerprint for _, fingerprint in page])
    missing = [pk for pk, fingerprint in page if fingerprint not in found]
    made_by_id = {}
    if missing:
        workflows = selectors.workflow_rows_for_display(missing)
        rows = serializers.WorkflowListSerializer(workflows, many=True).data
        made_by_id = {workflow.pk: row for workflow, row in zip(workflows, _json_ready(rows), strict=True)}
        workflow_rows.set_many({w.row_fingerprint: made_by_id[w.pk] for w in workflows})
    # A workflow changed since the page was read shows as it is now; one deleted since, not at all.
    return [
        found[fingerprint] if fingerprint in found else made_by_id[pk]
        for pk, fingerprint in page
        if fingerprint in found or pk in made_by_id
    ]
