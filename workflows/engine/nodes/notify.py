from workflows.credentials import credential_value
from workflows.engine.nodes.base import NodeResult, NodeType
from workflows.engine.nodes.outbound import send
from workflows.engine.nodes.schema import credential_name


class NotifyNode(NodeType):
    """Send a message through a notification channel: Slack, Teams, Discord or a generic webhook.

    Every channel needs a `url`, or the name of a `credential` holding it (a `slack_webhook` credential).
    The output is `{delivery}`, describing what the channel accepted. Not idempotent: a re-run after a
    crash would post the message twice. In-app notifications come with the notifications app.
    """

    name = "notify"
    description = "Sends a message through a notification channel such as Slack, Teams or Discord."
    idempotent = False
    template_fields = ("url", "message", "title")
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["channel", "message"],
        "properties": {
            "channel": {"description": "Where to send.", "enum": ["slack", "teams", "discord", "webhook"]},
            "url": {
                "description": "The channel's incoming-webhook URL (template).",
                "type": "string",
                "minLength": 1,
                "maxLength": 2048,
            },
            "credential": credential_name(
                "A credential holding the URL, instead of `url` (a `slack_webhook` one for Slack)."
            ),
            "message": {"description": "The message (template).", "type": "string", "minLength": 1},
            "title": {
                "description": "A title shown above the message (template).",
                "type": "string",
                "maxLength": 1000,
            },
        },
        "anyOf": [{"required": ["url"]}, {"required": ["credential"]}],
    }
    queue = "notifications"

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult:
        config = prepared["config"]
        url = (
            config.get("url")
            or credential_value(workspace_id=context.workspace_id, name=config["credential"], kinds=("slack_webhook",))[
                "url"
            ]
        )
        title, message = config.get("title", ""), config["message"]
        text = f"*{title}*\n{message}" if title else message
        payload = {
            "slack": {"text": text},
            "teams": {"title": title, "text": message} if title else {"text": message},
            "discord": {"content": f"**{title}**\n{message}" if title else message},
            "webhook": {"title": title, "message": message, "run": context.run_id, "node": context.node_key},
        }[config["channel"]]
        response = send("POST", url, context, json=payload)
        return NodeResult(output={"delivery": {"channel": config["channel"], "status": response.status}})
