from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from workflows.engine.errors import PermanentError
from workflows.engine.nodes.base import NodeResult, NodeType, Suspend

MAX_DELAY_SECONDS = 365 * 24 * 3600


class DelayNode(NodeType):
    """Wait a number of seconds, or until a time, without holding a worker (the next step is a countdown).

    Exactly one of `seconds` and `until` is given; `until` renders to an ISO-8601 datetime, and a time in
    the past does not wait. The output is `{waited}`, the seconds actually waited.
    """

    name = "delay"
    group = "logic"
    example = {"key": "wait", "config": {"seconds": 60}}
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

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult | Suspend:
        now = timezone.now()
        if "until" in context.state:
            until = datetime.fromisoformat(context.state["until"])
            started = datetime.fromisoformat(context.state["started"])
        else:
            config, started = prepared["config"], now
            until = now + timedelta(seconds=config["seconds"]) if "seconds" in config else _parse_time(config["until"])
        if until <= now:
            return NodeResult(output={"waited": round(max((now - started).total_seconds(), 0), 3)})
        return Suspend(
            reason="delay",
            until=until,
            state={"until": until.isoformat(), "started": started.isoformat()},
            message=f"Waiting until {until.isoformat()}",
        )


BAD_TIME = "'until' rendered to {value!r}, which is not an ISO-8601 date and time."


def _parse_time(value: str) -> datetime:
    parsed = parse_datetime(value.strip()) if isinstance(value, str) else None
    if parsed is None:
        raise PermanentError(BAD_TIME.format(value=value))
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.utc)
