"""`request`: one outbound call through the guard, redirects followed hop by hop with the same checks, and
the whole (size-capped) response returned. Failures are egress errors; non-2xx answers are returned."""

import codecs
import json as jsonlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx2
from django.conf import settings

from workflows.engine import cancellation
from workflows.engine.egress.connection import TIMED_OUT, capped_chunks, headers_without, send, tls_context
from workflows.engine.egress.destinations import Target
from workflows.engine.egress.errors import EgressConnectionError, EgressTimeout, EgressTooManyRedirects
from workflows.engine.errors import PermanentError

logger = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers that carry a body's description or the caller's identity, dropped on the redirects that
# drop the body or leave the origin. Callers name further secret-bearing headers (`secret_headers`).
BODY_HEADERS = ("content-type", "content-length", "content-encoding", "transfer-encoding")
CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")

CONNECTION_FAILED = "could not connect to {host}: {reason}"
TOO_MANY_REDIRECTS = "more than {limit} redirects"
REQUEST_INVALID = "the request cannot be sent: {reason}"
RESPONSE_UNDECODABLE = "the response from {host} cannot be decoded: {reason}"
JSON_UNSERIALISABLE = "the request body is not JSON-serialisable: {reason}"
NOT_JSON = "response is not JSON"


@dataclass(frozen=True)
class EgressResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes
    url: str  # final URL after redirects, with the original host name
    elapsed_ms: float  # the whole call, redirects included

    def json(self) -> Any:
        """The body parsed as JSON; PermanentError(NOT_JSON) if it is not."""
        try:
            return jsonlib.loads(self.body)
        except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError, absurd nesting
            raise PermanentError(NOT_JSON) from error

    def text(self) -> str:
        """The body decoded with the Content-Type charset (UTF-8 if none or unknown), never raising."""
        return self.body.decode(_charset(self.headers.get("content-type", "")), errors="replace")


_UNSET: Any = object()


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping | None = None,
    json: Any = _UNSET,
    data: Mapping[str, str] | None = None,
    content: bytes | str | None = None,
    timeout: float = 30.0,
    follow_redirects: bool = True,
    max_redirects: int = 5,
    max_response_bytes: int | None = None,
    secret_headers: Iterable[str] = (),
) -> EgressResponse:
    """Send one HTTP request to a checked destination and return the whole (size-capped) response.

    At most one of `json` (any JSON value, `None` included), `data` (form fields) and `content` is
    given. `timeout` bounds each connect, write and read, and each hop as a whole (checked between
    body chunks), so a call ends within about `timeout` * (redirects followed + 1).
    `max_response_bytes` defaults to `DWC_OUTBOUND_MAX_RESPONSE_BYTES` and counts decoded bytes.
    A redirect to another origin (scheme, host or port) drops Authorization, Proxy-Authorization,
    Cookie and the `secret_headers` the caller names (a signature, an API-key header).

    Raises EgressForbidden, EgressTooManyRedirects, EgressResponseTooLarge (permanent),
    EgressConnectionError, EgressTimeout (transient), PermanentError for an unsendable request.
    """
    if sum((json is not _UNSET, data is not None, content is not None)) > 1:
        raise ValueError("pass at most one of json, data and content")
    if timeout <= 0 or max_redirects < 0:
        raise ValueError("timeout must be positive and max_redirects not negative")
    limit = settings.DWC_OUTBOUND_MAX_RESPONSE_BYTES if max_response_bytes is None else max_response_bytes
    method = method.upper()
    request_headers = _request_headers(headers)
    origin_bound = (*CREDENTIAL_HEADERS, *(name.lower() for name in secret_headers))
    body: dict[str, Any] = {}
    if json is not _UNSET:
        # Encoded here because httpx2 reads json=None as "no body", and a workflow may mean JSON null.
        try:
            body["content"] = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as error:
            raise PermanentError(JSON_UNSERIALISABLE.format(reason=error)) from error
        if not any(name.lower() == "content-type" for name in request_headers):
            request_headers["Content-Type"] = "application/json"
    elif data is not None:
        body["data"] = data
    elif content is not None:
        body["content"] = content

    started = time.monotonic()
    deadline = started + timeout
    target = Target.parse(url, params=params)
    ssl_context = tls_context()
    redirects = 0
    while True:
        try:
            transport, response = send(
                target,
                method=method,
                headers=request_headers,
                body=body,
                timeout=timeout,
                deadline=deadline,
                ssl_context=ssl_context,
            )
        except (httpx2.HTTPError, httpx2.InvalidURL) as error:
            _raise_if_stopped(error)
            raise _translated(error, target=target, timeout=timeout) from error
        try:
            location = response.headers.get("location")
            if not (follow_redirects and response.status_code in REDIRECT_STATUSES and location):
                payload = _read_capped(
                    response, target=target, method=method, limit=limit, deadline=deadline, timeout=timeout
                )
                break
        finally:
            response.close()
            transport.close()
        redirects += 1
        if redirects > max_redirects:
            raise EgressTooManyRedirects(TOO_MANY_REDIRECTS.format(limit=max_redirects))
        next_target = Target.parse(urljoin(target.url, location))
        method, body = _redirected_method_and_body(response.status_code, method, body)
        if not body:
            request_headers = headers_without(request_headers, BODY_HEADERS)
        if not next_target.may_inherit_secrets_of(target):
            request_headers = headers_without(request_headers, origin_bound)
        target = next_target
        deadline += timeout

    elapsed_ms = (time.monotonic() - started) * 1000
    logger.debug(
        "outbound request",
        extra={"method": method, "host": target.host, "status": response.status_code, "redirects": redirects},
    )
    return EgressResponse(
        status=response.status_code,
        headers=_joined_headers(response.headers.multi_items()),
        body=payload,
        url=target.url,
        elapsed_ms=elapsed_ms,
    )


def _read_capped(
    response: httpx2.Response, *, target: Target, method: str, limit: int, deadline: float, timeout: float
) -> bytes:
    payload = bytearray()
    try:
        for chunk in capped_chunks(
            response, target=target, method=method, limit=limit, deadline=deadline, timeout=timeout
        ):
            payload += chunk
    except httpx2.HTTPError as error:
        _raise_if_stopped(error)
        raise _translated(error, target=target, timeout=timeout) from error
    return bytes(payload)


def _raise_if_stopped(error: Exception) -> None:
    """A call cut off because its step was stopped says so, rather than blaming the network."""
    stoppable = cancellation.current()
    if stoppable is not None and stoppable.cancelled:
        raise cancellation.StepStopped(cancellation.STEP_STOPPED) from error


def _translated(error: Exception, *, target: Target, timeout: float) -> Exception:
    """The egress error for an httpx2 one; messages name the host only, never the path or query."""
    if isinstance(error, httpx2.TimeoutException):
        return EgressTimeout(TIMED_OUT.format(host=target.host, timeout=timeout))
    if isinstance(error, httpx2.TransportError) and not isinstance(error, httpx2.LocalProtocolError):
        return EgressConnectionError(
            CONNECTION_FAILED.format(host=target.host, reason=str(error) or type(error).__name__)
        )
    if isinstance(error, httpx2.DecodingError):
        return PermanentError(RESPONSE_UNDECODABLE.format(host=target.host, reason=error))
    return PermanentError(REQUEST_INVALID.format(reason=str(error) or type(error).__name__))


def _redirected_method_and_body(status: int, method: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """303 (and 301/302 after a POST) continue as a GET without body, as browsers do; 307/308 keep both."""
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        return "GET", {}
    return method, body


def _request_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    # Host is ours to set: it must name the host that was checked.
    result = {name: value for name, value in (headers or {}).items() if name.lower() != "host"}
    defaults = {
        "User-Agent": f"DocumentWorkflowChain/{settings.VERSION}",
        "Accept": "*/*",
        "Accept-Encoding": "gzip, deflate",
    }
    present = {name.lower() for name in result}
    result.update({name: value for name, value in defaults.items() if name.lower() not in present})
    return result


def _joined_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in items:
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def _charset(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip("\"'")).name
            except LookupError:
                break
    return "utf-8"
