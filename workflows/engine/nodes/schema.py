"""JSON Schema fragments that several node types' config schemas share."""

HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"


def credential_name(description: str) -> dict:
    return {"description": description, "type": "string", "minLength": 1, "maxLength": 200}


HEADERS = {
    "description": "Request headers; values are templates.",
    "type": "object",
    "maxProperties": 100,
    "propertyNames": {"pattern": HEADER_NAME_PATTERN, "maxLength": 200},
    "additionalProperties": {"type": "string", "maxLength": 8192},
}
TIMEOUT_SECONDS = {
    "description": "Seconds to wait for the response.",
    "type": "number",
    "minimum": 0.1,
    "maximum": 300,
    "default": 30,
}
RETRY_ON_CRASH = {
    "description": "Whether to send the call again when the worker died during it.",
    "type": "boolean",
    "default": False,
}
