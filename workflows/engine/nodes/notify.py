from notifications.services.deliveries import message_send
from workflows.engine.errors import PermanentError
from workflows.engine.nodes.base import NodeResult, NodeType

LEVELS = ["info", "success", "warning", "error"]


class NotifyNode(NodeType):
    """Send a message through one of the workspace's notification channels, by name (email, SMS, push,
    webhook, Slack, Teams, Discord, in-app: whatever the channel is), with inline text or a notification
    template. The output is the delivery (its id, status, attempts, the receiver's answer).

    The message is sent at once by the worker running the step. A transient failure (a 503, a timeout)
    is retried by the notification service on its own schedule and the step succeeds with the delivery
    `retrying`; a permanent one (a 400, a refused address, a missing channel) fails the step. Sent at
    most once per run and node: the idempotency key is the run's and node's, so a step executed again
    after a crash returns the first delivery instead of sending twice.
    """

    name = "notify"
    group = "integrations"
    example = {
        "key": "tell_team",
        "config": {"channel": "team-slack", "message": "The draft about {{ input.topic }} is ready."},
    }
    description = "Sends a message through one of the workspace's notification channels."
    template_fields = ("title", "message", "link")
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["channel"],
        "properties": {
            "channel": {
                "description": "The name of a notification channel of the workspace.",
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
            },
            "message": {"description": "The message (template).", "type": "string", "minLength": 1},
            "title": {"description": "A title or subject (template).", "type": "string", "maxLength": 1000},
            "link": {"description": "A link sent with the message (template).", "type": "string", "maxLength": 2048},
            "level": {"description": "How it is shown: info, success, warning, error.", "enum": LEVELS},
            "template": {
                "description": "The name of a notification template, rendered with the run's `workflow`, `run` "
                "and `data` ({input, nodes}), instead of `message` and `title`.",
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
            },
        },
        "oneOf": [{"required": ["message"]}, {"required": ["template"]}],
    }
    queue = "notifications"

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult:
        config = prepared["config"]
        expressions = context.expressions
        event = {
            "type": "node.notify",
            "id": f"{context.run_id}:{context.node_key}",
            "workspace": {"id": context.workspace_id},
            "workflow": expressions.get("workflow"),
            "run": expressions.get("run"),
            "step": {"key": context.node_key, "type": cls.name},
            "error": None,
            "link": config.get("link", ""),
            "data": {"input": expressions.get("input"), "nodes": expressions.get("nodes")},
        }
        delivery = message_send(
            workspace_id=context.workspace_id,
            channel_name=config["channel"],
            subject=config.get("title", ""),
            body=config.get("message", ""),
            link=config.get("link", ""),
            level=config.get("level", "info"),
            template_name=config.get("template", ""),
            event=event,
            idempotency_key=f"node:{context.run_id}:{context.node_key}",
        )
        output = {
            "delivery": {
                "id": str(delivery.pk),
                "status": delivery.status,
                "attempts": delivery.attempts,
                "response_code": delivery.response_code,
                "provider_id": delivery.provider_id,
                "error": delivery.error,
            }
        }
        if delivery.status == delivery.Status.DEAD:
            raise PermanentError(f"The notification was not delivered: {delivery.error}", details=output)
        return NodeResult(output=output)
