"""Runs started per workflow, whoever starts them. Rates and the store they count in: core.throttling."""

import uuid

from core.throttling import RateFromSettings


class WorkflowTriggerThrottle(RateFromSettings):
    """Runs started per workflow, whoever starts them: on the views and actions marked `starts_runs`."""

    scope = "trigger"

    def get_cache_key(self, request, view) -> str | None:
        if request.method != "POST" or not getattr(view, "starts_runs", False):
            return None
        workflow_id = getattr(view, "kwargs", {}).get("pk")
        if workflow_id is None and isinstance(request.data, dict):
            workflow_id = request.data.get("workflow_id")  # POST /api/v3/trigger names it in the body
        try:
            workflow_id = uuid.UUID(str(workflow_id))
        except ValueError:
            return None  # the view answers 400 or 404 for it
        return self.cache_format % {"scope": self.scope, "ident": workflow_id}
