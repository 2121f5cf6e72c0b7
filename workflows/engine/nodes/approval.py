from workflows.engine.nodes.base import NodeType


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
