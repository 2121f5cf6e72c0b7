"""One hop to a checked address: a fresh connection pinned to the address that was checked, the name kept
for the Host header and TLS, and the response body read up to a limit and a deadline."""

import functools
import os
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx2
from opentelemetry import propagate, trace

from workflows.engine import cancellation
from workflows.engine.egress.destinations import Target, checked_addresses
from workflows.engine.egress.errors import EgressResponseTooLarge

_tracer = trace.get_tracer("dwc.egress")

TIMED_OUT = "{host} did not answer within {timeout:g} s"
RESPONSE_TOO_LARGE = "response from {host} is larger than {limit} bytes"


def tls_context() -> ssl.SSLContext:
    """The process's TLS context for outbound calls. Loading the CA bundle costs more than a call over
    a local network (58 % of a notification's send when it was made per call), so one is kept per
    trust store: SSL_CERT_FILE / SSL_CERT_DIR (an operator's private CA) pick another."""
    return _tls_context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.cache
def _tls_context_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # httpx reads the same variables; they are the cache's key so that a changed store is loaded.
    return httpx2.create_ssl_context()


def _traced(send):
    """With tracing on (config.tracing), each hop is a client span up to the response's headers, and the
    receiver gets its `traceparent`; without it both cost nothing."""

    @functools.wraps(send)
    def traced(target: Target, *, method: str, headers: dict[str, str], **rest: Any):
        attributes = {"http.request.method": method, "server.address": target.host, "server.port": target.port}
        with _tracer.start_as_current_span(method, kind=trace.SpanKind.CLIENT, attributes=attributes) as span:
            headers = dict(headers)
            propagate.inject(headers)
            transport, response = send(target, method=method, headers=headers, **rest)
            span.set_attribute("http.response.status_code", response.status_code)
            return transport, response

    return traced


@_traced
def send(
    target: Target,
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
    addresses = checked_addresses(target.host, target.port)
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


def capped_chunks(
    response: httpx2.Response, *, target: Target, method: str, limit: int, deadline: float, timeout: float
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


def headers_without(headers: dict[str, str], names: Iterable[str]) -> dict[str, str]:
    dropped = set(names)
    return {name: value for name, value in headers.items() if name.lower() not in dropped}
