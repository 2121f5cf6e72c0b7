from workflows.engine.nodes.base import NodeType

MAX_DELAY_SECONDS = 365 * 24 * 3600


class DelayNode(NodeType):
    """Wait a number of seconds, or until a time, without holding a worker (the next step is a countdown).

    Exactly one of `seconds` and `until` is given; `until` renders to an ISO-8601 datetime, and a time in
    the past does not wait. The output is `{waited}`, the seconds actually waited.
    """

    name = "delay"
    description = "Waits a number of seconds or until a given time before the run continues."
    template_fields = ("until",)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "seconds": {
                "description": "Seconds to wait (`duration` is accepted as an alias).",
                "type": "number",
                "minimum": 0,
                "maximum": MAX_DELAY_SECONDS,
            },
            "until": {
                "description": "When to continue: a template rendering to an ISO-8601 datetime.",
                "type": "string",
                "minLength": 1,
                "maxLength": 1000,
            },
        },
        "anyOf": [{"required": ["seconds"]}, {"required": ["until"]}],
        "not": {"required": ["seconds", "until"]},
    }

    @classmethod
    def normalize_config(cls, config: dict) -> dict:
        # Older clients send `duration`; when both are given, both stay so the schema rejects the ambiguity.
        if "duration" in config and "seconds" not in config:
            config["seconds"] = config.pop("duration")
        return config
