from datetime import datetime, timedelta

from django.utils import timezone

from workflows.engine.errors import PermanentError
from workflows.engine.nodes.base import NodeResult, NodeType, Suspend


class ApprovalNode(NodeType):
    """Pause the run in `waiting` until someone approves or rejects it (API, dashboard or admin).

    `approvers` limits who may decide; without it, anyone allowed to approve runs of the workflow may.
    After `timeout` seconds the `on_timeout` decision is taken. The output is `{approved, by, comment}`.
    """

    name = "approval"
    description = "Pauses the run until an approver approves or rejects it."
    template_fields = ("message",)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "message": {"description": "What the approvers are asked (template).", "type": "string"},
            "approvers": {
                "description": "Emails of the users who may decide; anyone with permission when absent or empty.",
                "type": "array",
                "items": {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+$", "maxLength": 320},
                "maxItems": 100,
                "uniqueItems": True,
            },
            "timeout": {
                "description": "Seconds to wait for a decision before `on_timeout` applies; no limit when absent.",
                "type": "integer",
                "minimum": 60,
                "maximum": 30 * 24 * 3600,
            },
            "on_timeout": {
                "description": "The decision taken when the timeout passes.",
                "enum": ["reject", "approve"],
                "default": "reject",
            },
        },
    }

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult | Suspend:
        """Ask, then wait. Decisions arrive through the approve service; this runs again only on timeout."""
        config = prepared["config"]
        if "requested_at" not in context.state:
            timeout = config.get("timeout")
            until = timezone.now() + timedelta(seconds=timeout) if timeout else None
            return Suspend(
                reason="approval",
                until=until,
                state={"requested_at": timezone.now().isoformat(), "timeout_at": until.isoformat() if until else None},
                message=config.get("message", ""),
            )
        timeout_at = context.state.get("timeout_at")
        if timeout_at and datetime.fromisoformat(timeout_at) <= timezone.now():
            if config.get("on_timeout", "reject") == "approve":
                return NodeResult(output={"approved": True, "by": "timeout", "comment": ""})
            raise PermanentError(NO_DECISION.format(seconds=config.get("timeout")))
        return Suspend(
            reason="approval",
            until=datetime.fromisoformat(timeout_at) if timeout_at else None,
            state=context.state,
            message=config.get("message", ""),
        )


NO_DECISION = "Nobody decided within {seconds} seconds; the approval was rejected (on_timeout: reject)."
