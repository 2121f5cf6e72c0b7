"""Fake OpenAI and Anthropic APIs on a pytest-httpserver, for provider tests and end-to-end document runs.

    llm = openai_server(httpserver, text="# Title\n\nBody.")
    connection = Connection(api_key="sk-test", base_url=llm.base_url)
    ...
    assert llm.requests[0].json["messages"][-1] == {"role": "user", "content": "Write it"}

Each endpoint answers the way the real API does: JSON, or server-sent events when the request body
says `"stream": true` (so a caller that streams and one that does not both work), with usage. Every
request is recorded before it is answered, failures included. `failures` are answered first, one
per request, then the successful answer for every request after them. The base URL uses
127.0.0.1, so DWC_OUTBOUND_ALLOWLIST must list it (worker processes included). Use a threaded
HTTPServer of your own when an answer waits (`delay`, `chunk_delay`, `Failure.delay`), so that the
shared server is not left busy.
"""

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

# The answer's text, or a function of the request body that returns it (to answer per prompt).
TextSource = str | Callable[[dict], str]


@dataclass(frozen=True)
class Failure:
    """An answer that is not a success: the status, its headers, the error message, an optional wait first."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "The server had an error while processing your request."
    # OpenAI's error `code` (for example "insufficient_quota"); Anthropic's error `type` is derived from the status.
    code: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    json: dict


@dataclass
class FakeLLM:
    base_url: str  # what goes into the credential's base_url
    requests: list[RecordedRequest]


def pieces(text: str) -> list[str]:
    """How the fake servers split a streamed answer into deltas: words with the spaces after them."""
    return re.findall(r"\s+|\S+\s*", text) if text else []


def openai_server(
    server: HTTPServer,
    *,
    text: TextSource = "Hello from the fake model.",
    model: str = "gpt-fake",
    tokens_in: int = 12,
    tokens_out: int = 7,
    finish_reason: str = "stop",
    failures: Sequence[Failure] = (),
    delay: float = 0.0,
    chunk_delay: float = 0.0,
    prefix: str = "",
) -> FakeLLM:
    """Serve `POST {prefix}/v1/chat/completions`; the base URL ends in `/v1`, as OpenAI's does."""

    def success(body: dict) -> Response:
        answer = text(body) if callable(text) else text
        usage = {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
        common = {"id": "chatcmpl-fake", "created": 1_700_000_000, "model": model}
        if not body.get("stream"):
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
            return Response(
                json.dumps({**common, "object": "chat.completion", "choices": [choice], "usage": usage}),
                content_type="application/json",
            )

        def chunk(delta: dict, finish: str | None = None) -> dict:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return {**common, "object": "chat.completion.chunk", "choices": [choice]}

        chunks = [chunk({"role": "assistant", "content": ""})]
        chunks += [chunk({"content": piece}) for piece in pieces(answer)]
        chunks.append(chunk({}, finish_reason))
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**common, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        events = [f"data: {json.dumps(item)}\n\n" for item in chunks] + ["data: [DONE]\n\n"]
        return _event_stream(events, chunk_delay)

    def failure(failed: Failure) -> Response:
        error = {"message": failed.message, "type": "server_error" if failed.status >= 500 else "invalid_request_error"}
        return Response(
            json.dumps({"error": {**error, "param": None, "code": failed.code}}),
            status=failed.status,
            headers=failed.headers,
            content_type="application/json",
        )

    requests = _serve(server, f"{prefix}/v1/chat/completions", success, failure, failures, delay)
    return FakeLLM(base_url=f"http://127.0.0.1:{server.port}{prefix}/v1", requests=requests)


def anthropic_server(
    server: HTTPServer,
    *,
    text: TextSource = "Hello from the fake model.",
    model: str = "claude-fake",
    tokens_in: int = 12,
    tokens_out: int = 7,
    stop_reason: str = "end_turn",
    failures: Sequence[Failure] = (),
    delay: float = 0.0,
    chunk_delay: float = 0.0,
    prefix: str = "",
) -> FakeLLM:
    """Serve `POST {prefix}/v1/messages`; the base URL is the part before `/v1`, as Anthropic's is."""

    def success(body: dict) -> Response:
        answer = text(body) if callable(text) else text
        message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "stop_sequence": None}
        if not body.get("stream"):
            return Response(
                json.dumps(
                    {
                        **message,
                        "content": [{"type": "text", "text": answer}],
                        "stop_reason": stop_reason,
                        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
                    }
                ),
                content_type="application/json",
            )
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": tokens_in, "output_tokens": 1},
        }
        events = [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            ("ping", {"type": "ping"}),
            *(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                )
                for piece in pieces(answer)
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": tokens_out},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        return _event_stream([f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events], chunk_delay)

    def failure(failed: Failure) -> Response:
        kind = ANTHROPIC_ERROR_TYPES.get(
            failed.status, "api_error" if failed.status >= 500 else "invalid_request_error"
        )
        return Response(
            json.dumps({"type": "error", "error": {"type": kind, "message": failed.message}}),
            status=failed.status,
            headers=failed.headers,
            content_type="application/json",
        )

    requests = _serve(server, f"{prefix}/v1/messages", success, failure, failures, delay)
    return FakeLLM(base_url=f"http://127.0.0.1:{server.port}{prefix}", requests=requests)


ANTHROPIC_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _serve(
    server: HTTPServer,
    path: str,
    success: Callable[[dict], Response],
    failure: Callable[[Failure], Response],
    failures: Sequence[Failure],
    delay: float,
) -> list[RecordedRequest]:
    requests: list[RecordedRequest] = []
    lock = threading.Lock()

    def handle(request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        with lock:
            index = len(requests)
            requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    headers={name.lower(): value for name, value in request.headers.items()},
                    json=body,
                )
            )
        failed = failures[index] if index < len(failures) else None
        time.sleep(failed.delay if failed else delay)
        return failure(failed) if failed else success(body)

    server.expect_request(path, method="POST").respond_with_handler(handle)
    return requests


def _event_stream(events: list[str], chunk_delay: float) -> Response:
    def generate() -> Iterator[bytes]:
        for event in events:
            yield event.encode()
            if chunk_delay:
                time.sleep(chunk_delay)

    return Response(generate(), content_type="text/event-stream")
