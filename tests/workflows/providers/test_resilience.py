"""Retries, the circuit breaker and the result cache of `providers.generate`, against real local servers."""

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from prometheus_client import REGISTRY
from werkzeug import Request, Response

from tests.workflows.llm_servers import Failure, anthropic_server, openai_server
from workflows.engine import providers
from workflows.engine.errors import PermanentError, TransientError
from workflows.engine.providers import CircuitOpenError
from workflows.engine.providers.base import Connection, GenerationRequest, Message
from workflows.engine.providers.sdk_errors import retry_after_seconds

KEY = "sk-test-0123456789abcdef"
REQUEST = GenerationRequest(model="gpt-test", messages=(Message("user", "Write an introduction to AI."),))


def generate(llm, **options):
    return providers.generate("openai", REQUEST, Connection(api_key=KEY, base_url=llm.base_url), **options)


# --- retries -----------------------------------------------------------------------------------------


def test_a_429_is_retried_after_the_retry_after_the_server_asked_for(httpserver):
    llm = openai_server(httpserver, text="At last.", failures=[Failure(429, headers={"Retry-After": "1"})])

    started = time.monotonic()
    generation = generate(llm)

    assert time.monotonic() - started >= 1
    assert generation.text == "At last."
    assert len(llm.requests) == 2


def test_a_retry_after_longer_than_the_cap_ends_the_call_at_once(httpserver, settings):
    settings.DWC_PROVIDER_MAX_RETRY_AFTER_SECONDS = 5
    llm = openai_server(httpserver, failures=[Failure(429, headers={"Retry-After": "30"})])

    started = time.monotonic()
    with pytest.raises(TransientError, match="OpenAI answered 429") as failed:
        generate(llm)

    assert time.monotonic() - started < 1
    assert failed.value.retry_after == 30
    assert len(llm.requests) == 1


def test_repeated_server_errors_are_retried_then_fail_transiently(httpserver):
    llm = openai_server(httpserver, failures=[Failure(500, message="boom")] * 3)

    with pytest.raises(TransientError, match="OpenAI answered 500: boom"):
        generate(llm)

    assert len(llm.requests) == 3  # the call and DWC_PROVIDER_MAX_RETRIES = 2 retries


def test_a_server_slower_than_the_timeout_is_a_transient_error(threaded_server, settings):
    settings.DWC_PROVIDER_TIMEOUT_SECONDS = 0.5
    settings.DWC_PROVIDER_MAX_RETRIES = 0
    llm = openai_server(threaded_server, delay=1.5)

    started = time.monotonic()
    with pytest.raises(TransientError, match=r"did not answer within 0\.5 s"):
        generate(llm)

    assert time.monotonic() - started < 1.2


def test_text_streamed_by_a_failed_attempt_is_revoked_before_the_retry(threaded_server):
    """The first answer breaks off after two pieces; the caller hears of the restart before the second."""
    seen: list[str] = []

    def broken_then_whole(request: Request) -> Response:
        seen.append("request")
        chunks = [{"index": 0, "delta": {"content": piece}, "finish_reason": None} for piece in ("Half ", "an ")]

        def events():
            for choice in chunks:
                yield f"data: {json.dumps({'id': 'c', 'created': 1, 'model': 'm', 'choices': [choice]})}\n\n".encode()
            if len(seen) == 1:
                raise ConnectionAbortedError("the server went away mid-answer")
            yield b"data: [DONE]\n\n"

        return Response(events(), content_type="text/event-stream")

    threaded_server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(broken_then_whole)
    llm_base_url = f"http://127.0.0.1:{threaded_server.port}/v1"
    events: list[str] = []

    generation = providers.generate(
        "openai",
        REQUEST,
        Connection(api_key=KEY, base_url=llm_base_url),
        on_delta=events.append,
        on_restart=lambda: events.append("<restart>"),
    )

    assert events == ["Half ", "an ", "<restart>", "Half ", "an "]
    assert generation.text == "Half an "


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_seconds_or_milliseconds(headers, seconds):
    assert retry_after_seconds(headers) == seconds


def test_retry_after_may_be_a_date():
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    assert retry_after_seconds({"retry-after": when}) == pytest.approx(30, abs=1.5)


# --- circuit breaker ---------------------------------------------------------------------------------


@pytest.fixture
def breaker(settings):
    settings.DWC_PROVIDER_MAX_RETRIES = 0
    settings.DWC_PROVIDER_BREAKER_FAILURES = 3
    settings.DWC_PROVIDER_BREAKER_SECONDS = 1


def test_enough_failures_open_the_circuit_and_a_trial_after_the_period_closes_it(httpserver, breaker):
    llm = openai_server(httpserver, text="Back.", failures=[Failure(503)] * 3)
    for _ in range(3):
        with pytest.raises(TransientError, match="answered 503"):
            generate(llm)

    with pytest.raises(CircuitOpenError, match="provider circuit open"):
        generate(llm)
    assert len(llm.requests) == 3

    time.sleep(1.05)
    assert generate(llm).text == "Back."  # the half-open trial
    assert generate(llm).text == "Back."  # closed again: calls go through
    assert len(llm.requests) == 5


def test_a_failed_trial_opens_the_circuit_again(httpserver, breaker):
    llm = openai_server(httpserver, failures=[Failure(500)] * 4)
    for _ in range(3):
        with pytest.raises(TransientError):
            generate(llm)
    time.sleep(1.05)

    with pytest.raises(TransientError, match="answered 500"):
        generate(llm)  # the trial
    with pytest.raises(CircuitOpenError):
        generate(llm)

    assert len(llm.requests) == 4


def test_a_success_between_failures_resets_the_count(httpserver, breaker):
    failing = openai_server(httpserver, failures=[Failure(500), Failure(500)], prefix="/a")
    for _ in range(2):
        with pytest.raises(TransientError):
            generate(failing)
    generate(failing)
    httpserver.clear()
    failing = openai_server(httpserver, failures=[Failure(500), Failure(500)], prefix="/a")
    for _ in range(2):
        with pytest.raises(TransientError):
            generate(failing)

    assert generate(failing).text  # two failures, one success, two failures: never three in a row


def test_the_circuit_is_per_provider_and_base_url(httpserver, breaker):
    broken = openai_server(httpserver, failures=[Failure(500)] * 3, prefix="/broken")
    healthy = openai_server(httpserver, text="Fine.", prefix="/healthy")
    claude = anthropic_server(httpserver, text="Also fine.", prefix="/broken")
    for _ in range(3):
        with pytest.raises(TransientError):
            generate(broken)

    with pytest.raises(CircuitOpenError):
        generate(broken)
    assert generate(healthy).text == "Fine."
    other = providers.generate("anthropic", REQUEST, Connection(api_key=KEY, base_url=claude.base_url))
    assert other.text == "Also fine."


def test_permanent_errors_do_not_open_the_circuit(httpserver, breaker):
    llm = openai_server(httpserver, text="Fine.", failures=[Failure(400)] * 4)
    for _ in range(4):
        with pytest.raises(PermanentError):
            generate(llm)

    assert generate(llm).text == "Fine."


# --- result cache --------------------------------------------------------------------------------------


def cache_hits(provider: str) -> float:
    return REGISTRY.get_sample_value("dwc_generation_cache_hits_total", {"provider": provider})


def test_a_cached_generation_is_served_without_a_call_and_counted(httpserver):
    llm = openai_server(httpserver, text="Remember me.", tokens_in=5, tokens_out=3)
    hits_before = cache_hits("openai")
    first = generate(llm, use_cache=True)
    deltas: list[str] = []

    second = generate(llm, use_cache=True, on_delta=deltas.append)

    assert (first.cached, second.cached) == (False, True)
    assert (second.text, second.tokens_in, second.tokens_out, second.model) == ("Remember me.", 5, 3, "gpt-fake")
    assert deltas == ["Remember me."]
    assert len(llm.requests) == 1
    assert cache_hits("openai") == hits_before + 1


def test_the_cache_is_only_used_when_asked_and_keyed_by_every_parameter(httpserver):
    llm = openai_server(httpserver)
    generate(llm, use_cache=True)

    generate(llm)
    providers.generate(
        "openai",
        GenerationRequest(model="gpt-test", messages=REQUEST.messages, temperature=0.9),
        Connection(api_key=KEY, base_url=llm.base_url),
        use_cache=True,
    )

    assert len(llm.requests) == 3


# --- the rest ------------------------------------------------------------------------------------------


def test_the_template_provider_answers_the_last_user_message_without_a_call():
    request = GenerationRequest(
        model="template",
        messages=(Message("system", "ignored"), Message("user", "context"), Message("user", "The document.")),
    )

    generation = providers.generate("template", request, Connection())

    assert (generation.text, generation.tokens_in, generation.tokens_out) == ("The document.", 0, 0)


def test_an_unknown_provider_fails_permanently():
    with pytest.raises(PermanentError, match="unknown provider 'mistral'"):
        providers.generate("mistral", REQUEST, Connection(api_key=KEY))


def test_the_key_appears_in_no_log_line(httpserver, caplog):
    llm = openai_server(httpserver, failures=[Failure(500, message=f"echo {KEY}"), Failure(401)])

    with caplog.at_level(logging.DEBUG), pytest.raises(PermanentError):
        generate(llm)

    assert caplog.records
    assert KEY not in caplog.text
    assert all(KEY not in json.dumps(record.__dict__, default=str) for record in caplog.records)
