"""A workflow as GET workflows/{id} shows it (WorkflowSerializer's output), cached under the digest of
what it is made from (workflows.selectors.workflow_fingerprint) in a core.content_cache: never stale,
so never invalidated. Authorization is not cached: every read checks the caller's role first."""

import hashlib
import inspect

from accounts.models import User
from core.content_cache import ContentCache
from workflows import selectors
from workflows.api import serializers
from workflows.specs import NODE_VALUE_FIELDS, SETTINGS_DEFAULTS


def _made_by() -> str:
    """What shapes a display besides the rows: the serializers' code and the defaults they fill in."""
    parts = [inspect.getsource(serializers), repr(SETTINGS_DEFAULTS), repr(NODE_VALUE_FIELDS)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


workflow_displays = ContentCache("workflow", _made_by)


def workflow_display(user: User, workflow_id) -> dict:
    """The workflow's display, if `user` may read it (Http404 and PermissionDenied as workflow_get)."""
    fingerprint = selectors.workflow_fingerprint(user, workflow_id)
    display = workflow_displays.get(fingerprint)
    if display is None:
        workflow, fingerprint = selectors.workflow_display_and_fingerprint(user, workflow_id)
        display = dict(serializers.WorkflowSerializer(workflow).data)  # not ReturnDict: it holds the serializer
        workflow_displays.set(fingerprint, display)
    return display
