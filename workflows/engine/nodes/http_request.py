import base64

from workflows.credentials import credential_value
from workflows.engine.nodes.base import NodeResult, NodeType
from workflows.engine.nodes.outbound import response_body, send
from workflows.engine.nodes.schema import HEADERS, RETRY_ON_CRASH, TIMEOUT_SECONDS, credential_name

# RFC 9110 token characters: what a header name may be made of.


class HttpRequestNode(NodeType):
    """Send one HTTP request and return the response.

    The URL, header values, query values and the body are templates. A response whose status is not in
    `expected_status` (any 2xx by default) fails the step. The output is `{status, headers, body}`, the
    body parsed as JSON when the response says it is JSON, text otherwise. The `credential`'s header
    (Authorization or its own name) is not sent on after a redirect to another origin.

    Not idempotent: a POST may not be safe to send twice, so a step interrupted by a crash is only re-sent
    when `retry_on_crash` is set (the engine may later decide per method).
    """

    name = "http_request"
    group = "integrations"
    example = {
        "key": "fetch",
        "config": {
            "url": "https://api.example.com/items/{{ input.id }}",
            "method": "GET",
            "headers": {"Accept": "application/json"},
        },
    }
    description = "Sends an HTTP request and returns the response status, headers and body."
    idempotent = False
    queue = "calls"
    template_fields = ("url", "headers", "query", "form", "body")
    value_fields = ("json",)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {"description": "The request URL (template).", "type": "string", "minLength": 1, "maxLength": 2048},
            "method": {
                "description": "The HTTP method.",
                "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                "default": "GET",
            },
            "headers": HEADERS,
            "query": {
                "description": "Query-string parameters added to the URL; string values are templates.",
                "type": "object",
                "maxProperties": 100,
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
            "json": {
                "description": "A JSON body; every string inside it is a template, and one that is exactly one "
                "`{{ expression }}` keeps the expression's type. Excludes `form` and `body`."
            },
            "form": {
                "description": "A form-encoded body; values are templates. Excludes `json` and `body`.",
                "type": "object",
                "additionalProperties": {"type": "string"},
            },
            "body": {"description": "A raw body (template). Excludes `json` and `form`.", "type": "string"},
            "credential": credential_name(
                "Name of the workspace credential that authenticates the request (never the secret)."
            ),
            "timeout": TIMEOUT_SECONDS,
            "expected_status": {
                "description": "Response statuses that count as success; any 2xx when absent.",
                "type": "array",
                "items": {"type": "integer", "minimum": 100, "maximum": 599},
                "minItems": 1,
                "maxItems": 100,
                "uniqueItems": True,
            },
            "follow_redirects": {"description": "Whether to follow redirects.", "type": "boolean", "default": True},
            "retry_on_crash": RETRY_ON_CRASH,
        },
        # At most one body; each forbidden pair is its own error, so the message names the two keys.
        "allOf": [
            {"not": {"required": ["json", "form"]}},
            {"not": {"required": ["json", "body"]}},
            {"not": {"required": ["form", "body"]}},
        ],
    }

    @classmethod
    def safe_to_rerun(cls, config: dict) -> bool:
        # HTTP defines these methods as idempotent: repeating one has the effect of sending it once.
        return config.get("method", "GET") in IDEMPOTENT_METHODS or bool(config.get("retry_on_crash"))

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult:
        config = prepared["config"]
        method = config.get("method", "GET")
        headers = dict(config.get("headers", {}))
        secrets = {}
        if "credential" in config:
            secrets = authorization_headers(context.workspace_id, config["credential"])
            headers.update(secrets)
        body = {}
        if "json" in config:
            body["json"] = config["json"]
        elif "form" in config:
            body["data"] = config["form"]
        elif "body" in config:
            body["content"] = config["body"]
        response = send(
            method,
            config["url"],
            context,
            headers=headers,
            params={key: str(value) for key, value in config.get("query", {}).items()} or None,
            timeout=config.get("timeout", 30),
            expected=config.get("expected_status"),
            follow_redirects=config.get("follow_redirects", True),
            secret_headers=tuple(secrets),
            **body,
        )
        return NodeResult(
            output={"status": response.status, "headers": response.headers, "body": response_body(response)}
        )


IDEMPOTENT_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")


def authorization_headers(workspace_id: str, name: str) -> dict[str, str]:
    """Headers carrying a credential: added at send time, so they never reach step inputs or events."""
    value = credential_value(workspace_id=workspace_id, name=name, kinds=("http_bearer", "http_basic", "http_header"))
    if "token" in value:
        return {"Authorization": f"Bearer {value['token']}"}
    if "username" in value:
        pair = base64.b64encode(f"{value['username']}:{value['password']}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    return {value["name"]: value["value"]}
