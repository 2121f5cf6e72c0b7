from datetime import datetime, timedelta

from django.utils import timezone

from workflows.engine.errors import PermanentError
from workflows.engine.nodes.base import NodeResult, NodeType, StepContext, Suspend

# Where a waiting approval keeps the documents under review, as they were when it began to wait.
REVIEW = "review"


class ApprovalNode(NodeType):
    """Pause the run in `waiting` until someone approves or rejects it (API, dashboard or admin).

    `approvers` limits who may decide; without it, anyone allowed to approve runs of the workflow may.
    After `timeout` seconds the `on_timeout` decision is taken. The output is `{approved, by, comment}`.
    `documents` names upstream document steps under review: while waiting, the step's state lists
    them (`review`), and the reviewer may edit them before approving, or ask for changes (the
    operations `decide` and `request_changes` in workflows.engine.operations).
    """

    name = "approval"
    group = "people"
    example = {
        "key": "review",
        "config": {
            "message": "Check the outline before the chapters are written.",
            "documents": ["outline"],
            "timeout": 86400,
        },
    }
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
            "documents": {
                "description": "Keys of upstream document nodes under review: the reviewer may edit them before "
                "approving, or ask for changes (they run again with the comment).",
                "type": "array",
                "items": {"type": "string", "maxLength": 64},
                "maxItems": 20,
                "uniqueItems": True,
            },
            "on_timeout": {
                "description": "The decision taken when the timeout passes.",
                "enum": ["reject", "approve"],
                "default": "reject",
            },
        },
    }

    @classmethod
    def execute(cls, prepared: dict, context: StepContext) -> NodeResult | Suspend:
        """Ask, then wait. Decisions arrive through the approve service; this runs again only on timeout."""
        config = prepared["config"]
        if "requested_at" not in context.state:
            timeout = config.get("timeout")
            until = timezone.now() + timedelta(seconds=timeout) if timeout else None
            state = {"requested_at": timezone.now().isoformat(), "timeout_at": until.isoformat() if until else None}
            if config.get("documents"):
                state[REVIEW] = under_review(config["documents"], context.expressions["nodes"])
            return Suspend(reason="approval", until=until, state=state, message=config.get("message", ""))
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


def under_review(keys: list[str], nodes: dict) -> list[dict]:
    """The named steps' documents, as their outputs give them: {node_key, document_id, version, title}.

    A step that did not succeed (skipped under an `all_done` rule) has no document to review and is
    left out."""
    review = []
    for key in keys:
        output = nodes.get(key, {}).get("output")
        if isinstance(output, dict) and output.get("document_id"):
            review.append(
                {
                    "node_key": key,
                    "document_id": output["document_id"],
                    "version": output.get("version"),
                    "title": output.get("title") or key,
                }
            )
    return review


NO_DECISION = "Nobody decided within {seconds} seconds; the approval was rejected (on_timeout: reject)."
