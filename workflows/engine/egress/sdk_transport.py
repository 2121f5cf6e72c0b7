"""The httpx2 client vendor SDKs (openai, anthropic) are given: every request they send takes the guard's
check-and-pin path, hop by hop, with the body capped."""

import time
from collections.abc import Iterator

import httpx2
from django.conf import settings

from workflows.engine.egress.connection import capped_chunks, headers_without, send, tls_context
from workflows.engine.egress.destinations import Target
from workflows.engine.egress.errors import EgressConnectionError


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

    Nothing is pooled (see `send`), so every request opens its own connection; the response's
    stream closes it when the response is closed.
    """

    def __init__(self, *, timeout: float = 30.0) -> None:
        self._timeout = timeout
        self._ssl_context = tls_context()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        timeout = (request.extensions.get("timeout") or {}).get("read") or self._timeout
        deadline = time.monotonic() + timeout
        target = Target.parse(str(request.url))
        content = request.read()
        try:
            transport, response = send(
                target,
                method=request.method,
                # Host is set from the checked target; the lengths are recomputed for the copied body.
                headers=headers_without(dict(request.headers.items()), ("host", "content-length", "transfer-encoding")),
                body={"content": content} if content else {},
                timeout=timeout,
                deadline=deadline,
                ssl_context=self._ssl_context,
            )
        except EgressConnectionError as error:
            raise httpx2.ConnectError(error.message, request=request) from error
        chunks = capped_chunks(
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
