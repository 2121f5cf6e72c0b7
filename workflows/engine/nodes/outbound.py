"""Outgoing HTTP calls of node types (http_request, webhook, notify), through the guarded egress client.

Every call carries `Idempotency-Key: <run id>:<node key>` so receivers can drop a repeated delivery,
and its timeout never outlives the step's own deadline. An answer outside the expected statuses
becomes a TransientError (429 and 5xx: another attempt may succeed) or a PermanentError. A 429 or
503 carries the server's Retry-After, which the step's retry honours (state.fail_or_retry).
"""

import json
import time
from typing import Any

from core.retry_after import retry_after_seconds
from workflows.engine.egress.client import EgressResponse, request
from workflows.engine.errors import PermanentError, TransientError
from workflows.engine.nodes.base import StepContext

MAX_ERROR_BODY_CHARS = 500
# The statuses whose Retry-After says when to come back (RFC 9110 §10.2.3); on a redirect it means
# something else, and other errors do not send it.
RETRY_AFTER_STATUSES = (429, 503)


def send(
    method: str,
    url: str,
    context: StepContext,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    expected: list[int] | None = None,
    secret_headers: tuple[str, ...] = (),
    **body: Any,
) -> EgressResponse:
    """Call the URL through the egress client; `secret_headers` do not follow a redirect to another origin."""
    headers = {"Idempotency-Key": context.idempotency_key, **(headers or {})}
    if context.deadline is not None:
        remaining = context.deadline - time.monotonic()
        if remaining <= 0:
            raise TransientError("The step ran out of time before the call.")
        timeout = min(timeout, remaining)
    response = request(method, url, headers=headers, timeout=timeout, secret_headers=secret_headers, **body)
    ok = response.status in expected if expected else 200 <= response.status < 300
    if not ok:
        excerpt = response.body[:MAX_ERROR_BODY_CHARS].decode(errors="replace")
        message = f"{method} {url} answered {response.status}."
        details = {"status": response.status, "body": excerpt}
        if response.status == 429 or response.status >= 500:
            retry_after = None
            if response.status in RETRY_AFTER_STATUSES:
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
            raise TransientError(message, details=details, retry_after=retry_after)
        raise PermanentError(message, details=details)
    return response


def response_body(response: EgressResponse) -> Any:
    """JSON when the server says so (and it parses), text otherwise."""
    text = response.body.decode(errors="replace")
    if "json" in response.headers.get("content-type", ""):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
