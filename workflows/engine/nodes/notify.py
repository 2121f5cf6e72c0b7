from workflows.engine.nodes.base import NodeType
from workflows.engine.nodes.schema import credential_name


class NotifyNode(NodeType):
    """Send a message through a notification channel: Slack, Teams, Discord, a webhook, or in-app.

    Every channel but `in_app` needs a `url`, or the name of a `credential` holding it (a `slack_webhook`
    credential for Slack). The output is `{delivery}`, describing what the channel accepted. Not idempotent:
    a re-run after a crash would post the message twice.
    """

    name = "notify"
    description = "Sends a message through a notification channel such as Slack, Teams or in-app."
    idempotent = False
    template_fields = ("url", "message", "title")
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["channel", "message"],
        "properties": {
            "channel": {"description": "Where to send.", "enum": ["slack", "teams", "discord", "webhook", "in_app"]},
            "url": {
                "description": "The channel's incoming-webhook URL (template); not used by `in_app`.",
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
        # Listing the channels (rather than "not in_app") keeps an unknown channel to a single error.
        "if": {"required": ["channel"], "properties": {"channel": {"enum": ["slack", "teams", "discord", "webhook"]}}},
        "then": {"anyOf": [{"required": ["url"]}, {"required": ["credential"]}]},
    }
