"""The one guarded outbound HTTP client: every request the product sends to a URL goes through `request`.

Workflow authors choose the URLs, so any outbound call could be aimed at the server's own network
(server-side request forgery). This module therefore accepts only http(s) URLs without credentials,
resolves the host once, refuses non-public addresses (by IANA's registries: `address_ranges`) unless
the operator allow-listed them (`DWC_OUTBOUND_ALLOWLIST`), and then connects to exactly the address
it checked: the URL sent to httpx2 carries the IP, while the `Host` header and TLS (SNI and
certificate check) carry the name, so a DNS answer that changes between check and connect
(rebinding) cannot move the connection.
Redirects are followed here, hop by hop, with the same checks. HTTP(S)_PROXY is not used (a proxy
would resolve names itself); SSL_CERT_FILE / SSL_CERT_DIR are, for operators with a private CA.

Failures are `TransientError`s (timeouts, DNS and connection errors) or `PermanentError`s (refused
destination, oversized response). Non-2xx answers are returned: callers decide what they mean.
Nothing that may hold a secret is logged: no paths, queries, headers or bodies.

Vendor SDKs (openai, anthropic) bring their own HTTP client; `http_client()` hands them one whose
transport, `GuardedTransport`, sends every request through the same check-and-pin path. The library
is httpx2, the httpx successor those SDKs are built on, so there is one HTTP stack for both ways out.
"""

import codecs
import ipaddress
import json as jsonlib
import logging
import socket
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import httpx2
from django.conf import settings

from workflows.engine import address_ranges, cancellation
from workflows.engine.errors import PermanentError, TransientError

logger = logging.getLogger(__name__)

IPAddress = address_ranges.IPAddress
IPNetwork = address_ranges.IPNetwork

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers that carry a body's description or the caller's identity, dropped on the redirects that
# drop the body or leave the origin. Callers name further secret-bearing headers (`secret_headers`).
BODY_HEADERS = ("content-type", "content-length", "content-encoding", "transfer-encoding")
CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")

SCHEME_FORBIDDEN = "scheme {scheme!r} is not allowed; use http or https"
USERINFO_FORBIDDEN = "credentials in the URL are not allowed; send them in a header"
URL_INVALID = "not a valid URL: {reason}"
ADDRESS_FORBIDDEN = "{host} resolves to {address}, which is not a public address ({reason}; see DWC_OUTBOUND_ALLOWLIST)"
DNS_FAILED = "could not resolve {host}"
CONNECTION_FAILED = "could not connect to {host}: {reason}"
TIMED_OUT = "{host} did not answer within {timeout:g} s"
TOO_MANY_REDIRECTS = "more than {limit} redirects"
RESPONSE_TOO_LARGE = "response from {host} is larger than {limit} bytes"
REQUEST_INVALID = "the request cannot be sent: {reason}"
RESPONSE_UNDECODABLE = "the response from {host} cannot be decoded: {reason}"
JSON_UNSERIALISABLE = "the request body is not JSON-serialisable: {reason}"
NOT_JSON = "response is not JSON"


class EgressForbidden(PermanentError):
    """The destination is refused: scheme, credentials in the URL, a non-public address, or a redirect to one."""


class EgressResponseTooLarge(PermanentError):
    """The response body grew past the caller's (or the setting's) limit; reading stopped there."""


class EgressTooManyRedirects(PermanentError):
    """The server redirected more than `max_redirects` times."""


class EgressConnectionError(TransientError):
    """DNS failure, refused or reset connection, TLS failure."""


class EgressTimeout(TransientError):
    """Connecting, sending or receiving took longer than the timeout."""


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
    target = _Target.parse(url, params=params)
    # One TLS context per call: loading the CA bundle per hop would cost more than the hop.
    ssl_context = httpx2.create_ssl_context()
    redirects = 0
    while True:
        try:
            transport, response = _send(
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
        next_target = _Target.parse(urljoin(target.url, location))
        method, body = _redirected_method_and_body(response.status_code, method, body)
        if not body:
            request_headers = _without(request_headers, BODY_HEADERS)
        if not next_target.may_inherit_secrets_of(target):
            request_headers = _without(request_headers, origin_bound)
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


def http_client(timeout: float) -> httpx2.Client:
    """An httpx2 client for vendor SDKs (`openai.OpenAI(http_client=...)`) that checks every request it sends.

    `timeout` bounds each connect, write and read, and each request as a whole, a streamed body
    included; the `timeout` the SDK sets on a request wins over it. Redirects are not followed by
    default, because httpx2 carries headers such as `x-api-key` to whatever host a redirect names; a
    caller that asks for them still gets every hop checked, since httpx2 calls the transport per hop.
    Environment proxies and .netrc are ignored, as in `request`.

    What it raises, chosen so that the SDKs' own error types stay meaningful: httpx2's timeout and
    transport errors (DNS failures included) for the network, which the SDKs turn into APITimeoutError
    and APIConnectionError; EgressForbidden for a refused destination and EgressResponseTooLarge for a
    body past DWC_OUTBOUND_MAX_RESPONSE_BYTES, which the SDKs wrap in APIConnectionError (`__cause__`
    keeps ours) or, for a body being streamed, let through as they are.
    """
    return httpx2.Client(
        transport=GuardedTransport(timeout=timeout), timeout=timeout, follow_redirects=False, trust_env=False
    )


class GuardedTransport(httpx2.BaseTransport):
    """Sends each request as `request` sends one hop: destination checked, connection pinned, body capped.

    Nothing is pooled (see `_send`), so every request opens its own connection; the response's
    stream closes it when the response is closed.
    """

    def __init__(self, *, timeout: float = 30.0) -> None:
        self._timeout = timeout
        # One TLS context per client: loading the CA bundle per request would cost more than the request.
        self._ssl_context = httpx2.create_ssl_context()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        timeout = (request.extensions.get("timeout") or {}).get("read") or self._timeout
        deadline = time.monotonic() + timeout
        target = _Target.parse(str(request.url))
        content = request.read()
        try:
            transport, response = _send(
                target,
                method=request.method,
                # Host is set from the checked target; the lengths are recomputed for the copied body.
                headers=_without(dict(request.headers.items()), ("host", "content-length", "transfer-encoding")),
                body={"content": content} if content else {},
                timeout=timeout,
                deadline=deadline,
                ssl_context=self._ssl_context,
            )
        except EgressConnectionError as error:
            raise httpx2.ConnectError(error.message, request=request) from error
        chunks = _capped_chunks(
            response,
            target=target,
            method=request.method,
            limit=settings.DWC_OUTBOUND_MAX_RESPONSE_BYTES,
            deadline=deadline,
            timeout=timeout,
        )
        return httpx2.Response(
            response.status_code,
            # The body is handed on decoded, so the client must not decode it a second time.
            headers=[
                (name, value)
                for name, value in response.headers.multi_items()
                if name not in ("content-encoding", "content-length")
            ],
            stream=_GuardedStream(chunks, response=response, transport=transport),
            extensions=response.extensions,
        )


class _GuardedStream(httpx2.SyncByteStream):
    """A response body whose closing also closes the response and the one-request transport under it."""

    def __init__(self, chunks: Iterator[bytes], *, response: httpx2.Response, transport: httpx2.HTTPTransport):
        self._chunks = chunks
        self._response = response
        self._transport = transport

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks

    def close(self) -> None:
        try:
            self._response.close()
        finally:
            self._transport.close()


@dataclass(frozen=True)
class _Target:
    """A checked-for-form URL: http(s), no credentials, an ASCII host and a port."""

    parts: SplitResult
    scheme: str
    host: str  # IDNA-encoded, lower-case, no brackets
    port: int

    @classmethod
    def parse(cls, url: str, *, params: Mapping | None = None) -> "_Target":
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise EgressForbidden(URL_INVALID.format(reason=error)) from error
        if parts.scheme not in ALLOWED_SCHEMES:
            raise EgressForbidden(SCHEME_FORBIDDEN.format(scheme=parts.scheme))
        if "@" in parts.netloc:
            raise EgressForbidden(USERINFO_FORBIDDEN)
        if not parts.hostname:
            raise EgressForbidden(URL_INVALID.format(reason="no host"))
        try:
            host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError as error:
            raise EgressForbidden(URL_INVALID.format(reason="the host is not a valid name")) from error
        if params:
            parts = parts._replace(query=str(httpx2.QueryParams(parts.query).merge(params)))
        return cls(
            parts=parts, scheme=parts.scheme, host=host, port=DEFAULT_PORTS[parts.scheme] if port is None else port
        )

    @property
    def url(self) -> str:
        return urlunsplit(self.parts)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def may_inherit_secrets_of(self, previous: "_Target") -> bool:
        """Whether a redirect from `previous` to here may carry its secret headers: same origin, or
        the same host moving from http to https on the default ports (as httpx and requests allow)."""
        if (self.scheme, self.host, self.port) == (previous.scheme, previous.host, previous.port):
            return True
        upgrade = (previous.scheme, self.scheme) == ("http", "https")
        default_ports = previous.port == DEFAULT_PORTS["http"] and self.port == DEFAULT_PORTS["https"]
        return upgrade and default_ports and self.host == previous.host

    def url_for(self, address: str) -> str:
        """This URL with the host replaced by the checked address; the fragment stays home."""
        literal = f"[{address}]" if ":" in address else address
        return urlunsplit((self.scheme, f"{literal}:{self.port}", self.parts.path, self.parts.query, ""))


def _send(
    target: _Target,
    *,
    method: str,
    headers: dict[str, str],
    body: dict[str, Any],
    timeout: float,
    deadline: float,
    ssl_context: ssl.SSLContext,
) -> tuple[httpx2.HTTPTransport, httpx2.Response]:
    """Check the destination, connect to a checked address and return the open response with its transport.

    A fresh transport per hop: a pooled TLS connection verified for one host name must not be reused
    for another name that happens to resolve to the same address. Raises EgressForbidden or
    EgressConnectionError (DNS) from the check and httpx2's own errors from the exchange: `request`
    translates those to egress errors, `GuardedTransport` hands them to the SDK, which knows them.
    """
    addresses = _checked_addresses(target.host, target.port)
    extensions: dict[str, Any] = {"sni_hostname": target.host} if target.scheme == "https" else {}
    stoppable = cancellation.current()
    if stoppable is not None:
        stoppable.check()
        extensions["trace"] = stoppable.trace
    for index, address in enumerate(addresses):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise httpx2.ConnectTimeout(TIMED_OUT.format(host=target.host, timeout=timeout))
        transport = httpx2.HTTPTransport(verify=ssl_context, retries=0)
        try:
            outgoing = httpx2.Request(
                method,
                target.url_for(address),
                headers={**headers, "Host": target.host_header},
                extensions={**extensions, "timeout": httpx2.Timeout(min(timeout, remaining)).as_dict()},
                **body,
            )
            return transport, transport.handle_request(outgoing)
        except httpx2.ConnectError:
            transport.close()
            # Nothing was sent yet, so the next checked address (say IPv4 after IPv6) may be tried.
            if index + 1 < len(addresses):
                continue
            raise
        except BaseException:
            transport.close()
            raise
    raise AssertionError("unreachable: getaddrinfo returned no address")  # pragma: no cover


def _checked_addresses(host: str, port: int) -> list[str]:
    """The host's addresses, resolved once; EgressForbidden if any of them is not allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise EgressConnectionError(DNS_FAILED.format(host=host)) from error
    addresses = list(dict.fromkeys(info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)))
    if not addresses:
        raise EgressConnectionError(DNS_FAILED.format(host=host))
    names, networks = _allowlist()
    if host.rstrip(".") in names:
        return addresses
    for address in addresses:
        ip = ipaddress.ip_address(address)
        reason = address_ranges.non_public_range(ip)
        if reason and not _in_networks(ip, networks):
            logger.warning("outbound request refused", extra={"host": host, "address": address})
            raise EgressForbidden(
                ADDRESS_FORBIDDEN.format(host=host, address=address, reason=reason),
                details={"host": host, "address": address},
            )
    return addresses


def address_allowed(address: str | IPAddress) -> bool:
    """Whether the guard would connect to this address: a public one, or one DWC_OUTBOUND_ALLOWLIST opens."""
    ip = ipaddress.ip_address(address)
    _names, networks = _allowlist()
    return address_ranges.is_public(ip) or _in_networks(ip, networks)


def _in_networks(ip: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return any(ip in network or (mapped is not None and mapped in network) for network in networks)


def _allowlist() -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """DWC_OUTBOUND_ALLOWLIST, read per call so that settings overrides apply: host names and networks."""
    entries = settings.DWC_OUTBOUND_ALLOWLIST
    if isinstance(entries, str):
        entries = entries.split(",")
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return frozenset(names), tuple(networks)


def _read_capped(
    response: httpx2.Response, *, target: _Target, method: str, limit: int, deadline: float, timeout: float
) -> bytes:
    payload = bytearray()
    try:
        for chunk in _capped_chunks(
            response, target=target, method=method, limit=limit, deadline=deadline, timeout=timeout
        ):
            payload += chunk
    except httpx2.HTTPError as error:
        _raise_if_stopped(error)
        raise _translated(error, target=target, timeout=timeout) from error
    return bytes(payload)


def _capped_chunks(
    response: httpx2.Response, *, target: _Target, method: str, limit: int, deadline: float, timeout: float
) -> Iterator[bytes]:
    """The decoded body, chunk by chunk; EgressResponseTooLarge past `limit`, httpx2.ReadTimeout past `deadline`."""
    declared = response.headers.get("content-length", "")
    if method != "HEAD" and declared.isdigit() and int(declared) > limit:
        raise EgressResponseTooLarge(RESPONSE_TOO_LARGE.format(host=target.host, limit=limit))
    received = 0
    for chunk in response.iter_bytes():
        received += len(chunk)
        if received > limit:
            raise EgressResponseTooLarge(RESPONSE_TOO_LARGE.format(host=target.host, limit=limit))
        yield chunk
        # A server that trickles bytes never trips the read timeout; the hop deadline stops it.
        if time.monotonic() > deadline:
            raise httpx2.ReadTimeout(TIMED_OUT.format(host=target.host, timeout=timeout))


def _raise_if_stopped(error: Exception) -> None:
    """A call cut off because its step was stopped says so, rather than blaming the network."""
    stoppable = cancellation.current()
    if stoppable is not None and stoppable.cancelled:
        raise cancellation.StepStopped(cancellation.STEP_STOPPED) from error


def _translated(error: Exception, *, target: _Target, timeout: float) -> Exception:
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


def _without(headers: dict[str, str], names: Iterable[str]) -> dict[str, str]:
    dropped = set(names)
    return {name: value for name, value in headers.items() if name.lower() not in dropped}


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
