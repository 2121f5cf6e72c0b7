"""A step's retry honours the Retry-After of a 429 or 503, capped by DWC_RETRY_AFTER_MAX_SECONDS.

Each attempt runs in this process (execute_step, what a worker does) against a real local HTTP server;
the next attempt's schedule is read from the step (`not_before`) and its `step.retrying` event.
"""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from werkzeug import Response

from tests.workflows.helpers import create
from workflows.engine import execute
from workflows.engine.errors import PermanentError, TransientError
from workflows.engine.state import retry_delay
from workflows.models import RunEvent, StepRun

pytestmark = pytest.mark.django_db(transaction=True)

RETRY = {"max_attempts": 3, "backoff_seconds": 0.5, "backoff_factor": 2}


@pytest.fixture(autouse=True)
def local_servers_reachable(settings):
    settings.DWC_OUTBOUND_ALLOWLIST = ["127.0.0.1", "localhost"]


def first_attempt(user_api, url: str, retry: dict = RETRY) -> StepRun:
    node = {"key": "call", "type": "http_request", "config": {"url": url}, "retry": retry}
    body = {"name": "Limited", "nodes": [node]}
    workflow = create(user_api, body)
    answer = user_api.post(f"/api/v3/workflows/{workflow['id']}/runs", {"input": {}}, format="json")
    assert answer.status_code in (200, 202), answer.content
    step = StepRun.objects.get(run_id=answer.json()["id"])
    execute.execute_step(step.pk, step.attempt)
    step.refresh_from_db()
    return step


def wait_of(step: StepRun) -> float:
    return (step.not_before - step.queued_at).total_seconds()


def retrying_event(step: StepRun) -> dict:
    return RunEvent.objects.get(run_id=step.run_id, type="step.retrying").data


def test_a_429_retry_after_in_seconds_sets_the_next_attempt(user_api, httpserver):
    limited = Response("slow down", status=429, headers={"Retry-After": "2"})
    answers = iter([limited, Response('{"ok": 1}', mimetype="application/json")])
    httpserver.expect_request("/limited").respond_with_handler(lambda request: next(answers))
    step = first_attempt(user_api, httpserver.url_for("/limited"))
    assert step.status == "retrying"
    assert wait_of(step) == pytest.approx(2)  # not the 0.5 s backoff
    assert retrying_event(step) | {"error": None} == {
        "attempt": 1,
        "type": "http_request",
        "error": None,
        "retry_in_seconds": 2,
        "retry_after": 2,
        "capped": False,
    }
    assert step.error["retry_after"] == 2 and step.error["status"] == 429

    execute.execute_step(step.pk, step.attempt)  # the worker's second attempt
    step.refresh_from_db()
    assert (step.status, step.attempt, step.output["body"]) == ("succeeded", 2, {"ok": 1})


def test_a_503_retry_after_as_an_http_date_is_read(user_api, httpserver):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    httpserver.expect_request("/down").respond_with_response(Response("", status=503, headers={"Retry-After": when}))
    step = first_attempt(user_api, httpserver.url_for("/down"))
    assert step.status == "retrying"
    assert wait_of(step) == pytest.approx(30, abs=2)


def test_a_retry_after_beyond_the_cap_is_cut_to_it(user_api, httpserver, settings):
    settings.DWC_RETRY_AFTER_MAX_SECONDS = 5
    huge = Response("", status=429, headers={"Retry-After": "86400"})
    httpserver.expect_request("/limited").respond_with_response(huge)
    step = first_attempt(user_api, httpserver.url_for("/limited"))
    assert step.status == "retrying"
    assert wait_of(step) == pytest.approx(5)
    event = retrying_event(step)
    assert (event["retry_in_seconds"], event["retry_after"], event["capped"]) == (5, 86400, True)


@pytest.mark.parametrize("retry_after", ["soon", "-30", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_an_unreadable_negative_or_past_retry_after_leaves_the_backoff(user_api, httpserver, retry_after):
    answer = Response("", status=503, headers={"Retry-After": retry_after})
    httpserver.expect_request("/down").respond_with_response(answer)
    step = first_attempt(user_api, httpserver.url_for("/down"))
    assert step.status == "retrying"
    assert wait_of(step) == pytest.approx(0.5)
    assert "retry_after" not in retrying_event(step)


def test_a_retry_after_on_the_last_attempt_fails_the_step(user_api, httpserver):
    answer = Response("", status=429, headers={"Retry-After": "2"})
    httpserver.expect_request("/limited").respond_with_response(answer)
    step = first_attempt(user_api, httpserver.url_for("/limited"), retry={**RETRY, "max_attempts": 1})
    assert step.status == "failed"
    assert step.run.status == "failed"
    assert step.not_before is None


def test_retry_after_of_a_500_is_not_read(user_api, httpserver):
    """RFC 9110 gives Retry-After a meaning on 503 (and 429, RFC 6585) only."""
    httpserver.expect_request("/broken").respond_with_response(Response("", status=500, headers={"Retry-After": "60"}))
    step = first_attempt(user_api, httpserver.url_for("/broken"))
    assert wait_of(step) == pytest.approx(0.5)


# The rule itself, for errors whatever raised them: a provider's Retry-After longer than its own limit
# (DWC_PROVIDER_MAX_RETRY_AFTER_SECONDS) reaches the step as a TransientError carrying it.


def test_a_providers_long_retry_after_is_waited_by_the_step(settings):
    settings.DWC_RETRY_AFTER_MAX_SECONDS = 300
    error = TransientError("openai answered 429: slow down", retry_after=120)
    assert retry_delay(RETRY, 1, error) == (120, {"retry_after": 120, "capped": False})


def test_a_backoff_longer_than_the_retry_after_wins(settings):
    settings.DWC_RETRY_AFTER_MAX_SECONDS = 300
    error = TransientError("answered 429", retry_after=1)
    assert retry_delay({**RETRY, "backoff_seconds": 10}, 2, error) == (20, {"retry_after": 1, "capped": False})


def test_a_backoff_longer_than_the_cap_is_kept(settings):
    settings.DWC_RETRY_AFTER_MAX_SECONDS = 5
    error = TransientError("answered 429", retry_after=600)
    assert retry_delay({**RETRY, "backoff_seconds": 10}, 1, error) == (10, {"retry_after": 600, "capped": True})


@pytest.mark.parametrize("error", [TransientError("x", retry_after=float("nan")), PermanentError("x")])
def test_errors_without_a_usable_retry_after_keep_the_backoff(error):
    assert retry_delay(RETRY, 2, error) == (1.0, {})
