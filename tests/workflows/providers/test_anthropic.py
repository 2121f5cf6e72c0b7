"""The Anthropic provider against a local server speaking the Messages API, through the real SDK."""

import pytest

from tests.workflows.llm_servers import Failure, anthropic_server, pieces
from workflows.engine import providers
from workflows.engine.egress.errors import EgressForbidden
from workflows.engine.errors import PermanentError, TransientError
from workflows.engine.providers.anthropic import JSON_HINT
from workflows.engine.providers.base import Connection, GenerationRequest, Message

KEY = "sk-ant-test-0123456789abcdef"
REQUEST = GenerationRequest(
    model="claude-test",
    messages=(
        Message("system", "You write short documents."),
        Message("user", "# Earlier\n\nSome context."),
        Message("user", "Write an introduction to AI."),
    ),
    temperature=0.3,
    max_tokens=200,
)


def test_a_message_sends_the_system_prompt_apart_and_the_rest_in_order_under_the_base_url(httpserver):
    llm = anthropic_server(httpserver, text="AI is here.", prefix="/proxy")

    generation = providers.generate("anthropic", REQUEST, Connection(api_key=KEY, base_url=llm.base_url))

    assert (generation.text, generation.tokens_in, generation.tokens_out) == ("AI is here.", 12, 7)
    assert (generation.finish_reason, generation.model) == ("end_turn", "claude-fake")
    [sent] = llm.requests
    assert sent.path == "/proxy/v1/messages"
    # This SDK version sends the key as a bearer token (older ones used x-api-key).
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["anthropic-version"]
    assert sent.json == {
        "model": "claude-test",
        "system": "You write short documents.",
        "messages": [
            {"role": "user", "content": "# Earlier\n\nSome context."},
            {"role": "user", "content": "Write an introduction to AI."},
        ],
        "max_tokens": 200,
        "temperature": 0.3,
    }


def test_max_tokens_defaults_from_the_settings_and_json_output_is_asked_for_in_the_system_prompt(httpserver, settings):
    settings.DWC_ANTHROPIC_MAX_TOKENS = 1234
    llm = anthropic_server(httpserver, text='{"title": "AI"}')
    request = GenerationRequest(model="claude-test", messages=(Message("user", "JSON please"),), json_output=True)

    generation = providers.generate("anthropic", request, Connection(api_key=KEY, base_url=llm.base_url))

    assert generation.text == '{"title": "AI"}'
    assert llm.requests[0].json == {
        "model": "claude-test",
        "system": JSON_HINT,
        "messages": [{"role": "user", "content": "JSON please"}],
        "max_tokens": 1234,
    }


def test_streaming_delivers_the_deltas_in_order_and_reads_the_usage(httpserver):
    text = "Artificial intelligence, in a few words.\n\nThat is all."
    llm = anthropic_server(httpserver, text=text, tokens_in=30, tokens_out=9)
    deltas: list[str] = []

    generation = providers.generate(
        "anthropic", REQUEST, Connection(api_key=KEY, base_url=llm.base_url), on_delta=deltas.append
    )

    assert deltas == pieces(text)
    assert generation.text == "".join(deltas) == text
    assert (generation.tokens_in, generation.tokens_out, generation.finish_reason) == (30, 9, "end_turn")
    assert (generation.model, generation.details["response_id"]) == ("claude-fake", "msg_fake")
    assert llm.requests[0].json["stream"] is True


def test_a_rejected_key_fails_permanently_without_the_key_in_the_message(httpserver):
    llm = anthropic_server(httpserver, failures=[Failure(401, message=f"invalid x-api-key {KEY}")])

    with pytest.raises(PermanentError, match="Anthropic rejected the API key") as failed:
        providers.generate("anthropic", REQUEST, Connection(api_key=KEY, base_url=llm.base_url))

    assert KEY not in str(failed.value)
    assert len(llm.requests) == 1


def test_an_overloaded_answer_is_retried(httpserver):
    llm = anthropic_server(httpserver, text="Finally.", failures=[Failure(529, message="Overloaded")])

    generation = providers.generate("anthropic", REQUEST, Connection(api_key=KEY, base_url=llm.base_url))

    assert generation.text == "Finally."
    assert len(llm.requests) == 2


def test_an_overloaded_answer_that_persists_ends_in_a_transient_error(httpserver, settings):
    settings.DWC_PROVIDER_MAX_RETRIES = 1
    llm = anthropic_server(httpserver, failures=[Failure(529, message="Overloaded")] * 2)

    with pytest.raises(TransientError, match="Anthropic answered 529: Overloaded"):
        providers.generate("anthropic", REQUEST, Connection(api_key=KEY, base_url=llm.base_url))

    assert len(llm.requests) == 2


def test_a_missing_key_fails_before_any_call(httpserver, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-the-operators-own")
    llm = anthropic_server(httpserver)

    with pytest.raises(PermanentError, match="needs a credential"):
        providers.generate("anthropic", REQUEST, Connection(base_url=llm.base_url))

    assert llm.requests == []


def test_a_loopback_base_url_is_refused_unless_allow_listed(httpserver, settings):
    settings.DWC_OUTBOUND_ALLOWLIST = []
    llm = anthropic_server(httpserver)

    with pytest.raises(EgressForbidden):
        providers.generate("anthropic", REQUEST, Connection(api_key=KEY, base_url=llm.base_url))

    assert llm.requests == []
