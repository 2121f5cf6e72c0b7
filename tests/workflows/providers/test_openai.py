"""The OpenAI provider against a local server speaking the Chat Completions API, through the real SDK."""

import threading
import time

import pytest

from tests.workflows.hanging_server import HangingServer
from tests.workflows.llm_servers import Failure, openai_server, pieces
from workflows.engine import cancellation, providers
from workflows.engine.egress.errors import EgressForbidden
from workflows.engine.errors import PermanentError
from workflows.engine.providers.base import Connection, GenerationRequest, Message
from workflows.engine.providers.sdk_errors import API_KEY_MISSING

KEY = "sk-test-0123456789abcdef"
REQUEST = GenerationRequest(
    model="gpt-test",
    messages=(
        Message("system", "You write short documents."),
        Message("user", "# Earlier\n\nSome context."),
        Message("user", "Write an introduction to AI."),
    ),
    temperature=0.3,
    max_tokens=200,
)


def test_a_completion_sends_model_messages_key_and_parameters_under_the_base_url(httpserver):
    llm = openai_server(httpserver, text="AI is here.", prefix="/gateway")

    generation = providers.generate(
        "openai", REQUEST, Connection(api_key=KEY, base_url=llm.base_url, organization="org-7")
    )

    assert (generation.text, generation.tokens_in, generation.tokens_out) == ("AI is here.", 12, 7)
    assert (generation.finish_reason, generation.model, generation.cached) == ("stop", "gpt-fake", False)
    assert generation.latency_ms > 0
    [sent] = llm.requests
    assert sent.path == "/gateway/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["openai-organization"] == "org-7"
    assert "openai-project" not in sent.headers
    assert sent.json == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "You write short documents."},
            {"role": "user", "content": "# Earlier\n\nSome context."},
            {"role": "user", "content": "Write an introduction to AI."},
        ],
        "temperature": 0.3,
        "max_tokens": 200,
    }
    assert KEY not in repr(generation)


def test_json_output_asks_for_a_json_object_and_unset_parameters_are_not_sent(httpserver):
    llm = openai_server(httpserver, text='{"title": "AI"}')
    request = GenerationRequest(model="gpt-test", messages=(Message("user", "JSON please"),), json_output=True)

    generation = providers.generate("openai", request, Connection(api_key=KEY, base_url=llm.base_url))

    assert generation.text == '{"title": "AI"}'
    assert llm.requests[0].json == {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "JSON please"}],
        "response_format": {"type": "json_object"},
    }
    assert "openai-organization" not in llm.requests[0].headers


def test_streaming_delivers_the_deltas_in_order_and_reads_the_usage(httpserver):
    text = "Artificial intelligence, in a few words.\n\nThat is all."
    llm = openai_server(httpserver, text=text, tokens_in=30, tokens_out=9)
    deltas: list[str] = []

    generation = providers.generate(
        "openai", REQUEST, Connection(api_key=KEY, base_url=llm.base_url), on_delta=deltas.append
    )

    assert deltas == pieces(text)
    assert generation.text == "".join(deltas) == text
    assert (generation.tokens_in, generation.tokens_out, generation.finish_reason) == (30, 9, "stop")
    assert generation.details["first_token_ms"] > 0
    sent = llm.requests[0].json
    assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})


def test_a_rejected_key_fails_permanently_without_the_key_in_the_message(httpserver):
    llm = openai_server(httpserver, failures=[Failure(401, message=f"Incorrect API key provided: {KEY}.")])

    with pytest.raises(PermanentError, match="rejected the API key") as failed:
        providers.generate("openai", REQUEST, Connection(api_key=KEY, base_url=llm.base_url))

    assert KEY not in str(failed.value)
    assert KEY not in repr(failed.value.details)
    assert len(llm.requests) == 1


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_rejected_request_fails_permanently_quoting_the_server(httpserver, status):
    llm = openai_server(httpserver, failures=[Failure(status, message=f"The model does not exist ({KEY}).")])

    with pytest.raises(PermanentError) as failed:
        providers.generate("openai", REQUEST, Connection(api_key=KEY, base_url=llm.base_url))

    assert str(failed.value) == f"OpenAI rejected the request ({status}): The model does not exist ([redacted])."
    assert len(llm.requests) == 1


def test_an_exhausted_quota_is_not_retried(httpserver):
    llm = openai_server(
        httpserver, failures=[Failure(429, message="You exceeded your quota.", code="insufficient_quota")]
    )

    with pytest.raises(PermanentError, match="no quota left"):
        providers.generate("openai", REQUEST, Connection(api_key=KEY, base_url=llm.base_url))

    assert len(llm.requests) == 1


def test_a_missing_key_fails_before_any_call(httpserver, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-operators-own")
    llm = openai_server(httpserver)

    with pytest.raises(PermanentError, match=API_KEY_MISSING.format(provider="OpenAI")):
        providers.generate("openai", REQUEST, Connection(base_url=llm.base_url))

    assert llm.requests == []


def test_a_loopback_base_url_is_refused_unless_allow_listed(httpserver, settings):
    settings.DWC_OUTBOUND_ALLOWLIST = []
    llm = openai_server(httpserver)

    with pytest.raises(EgressForbidden, match="not a public address"):
        providers.generate("openai", REQUEST, Connection(api_key=KEY, base_url=llm.base_url))

    assert llm.requests == []


def test_a_stopped_steps_model_call_is_cut_off_and_not_retried():
    """Cancelling a document step stops its language-model call at once, through the SDK, and no retry
    starts another (the provider would otherwise wait out its 5 s timeout here, then retry)."""
    server = HangingServer()
    stoppable, outcome = cancellation.CancelScope(), {}

    def call() -> None:
        with cancellation.scope(stoppable):
            try:
                providers.generate("openai", REQUEST, Connection(api_key=KEY, base_url=server.url.rsplit("/", 1)[0]))
            except Exception as error:  # the test inspects whatever it was
                outcome["error"] = error

    caller = threading.Thread(target=call)
    caller.start()
    assert server.received.wait(10)
    stopped_at = time.monotonic()
    stoppable.cancel()
    caller.join(4)
    assert not caller.is_alive()
    assert time.monotonic() - stopped_at < 2
    assert isinstance(outcome["error"], cancellation.StepStopped), outcome
    assert server.hung_up.is_set()
