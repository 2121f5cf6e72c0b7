"""The delivery service against local receivers: retries with backoff and Retry-After, dead letters,
SSRF refusals, scheduled sending, recovery after a worker died mid-send, and resend."""

import threading
import time
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.http import Http404
from django.utils import timezone
from werkzeug import Response

from audit.models import AuditEvent
from core.problems import Conflict
from notifications.channels.base import Sent
from notifications.models import Delivery
from notifications.services.deliveries import (
    INTERRUPTED,
    _claim,
    _record,
    deliveries_create,
    deliveries_dispatch,
    deliveries_recover,
    deliveries_send,
    delivery_create,
    delivery_resend,
    delivery_send,
)
from tests.notifications.conftest import channel_of

pytestmark = pytest.mark.django_db


def due_now(delivery: Delivery) -> None:
    """Skip the backoff wait: the next attempt is due."""
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_a_500_then_a_429_with_retry_after_then_a_200_is_sent_on_the_third_attempt(team, httpserver):
    httpserver.expect_ordered_request("/hook").respond_with_data("down", status=500)
    httpserver.expect_ordered_request("/hook").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "120"})
    )
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    channel = channel_of(team["workspace"], "webhook", {"url": httpserver.url_for("/hook")})
    delivery = delivery_create(channel=channel, subject="S", body="B")

    first = delivery_send(delivery_id=delivery.pk)
    assert (first.status, first.attempts, first.response_code) == ("retrying", 1, 500)
    # The first backoff is jittered within (0.5, 1] times DWC_NOTIFICATIONS_BACKOFF_SECONDS (1 s here).
    wait = (first.next_attempt_at - timezone.now()).total_seconds()
    assert 0 < wait <= 1
    assert delivery_send(delivery_id=delivery.pk) is None  # not due yet: an early message does nothing

    due_now(delivery)
    second = delivery_send(delivery_id=delivery.pk)
    assert (second.status, second.attempts, second.response_code) == ("retrying", 2, 429)
    assert 118 < (second.next_attempt_at - timezone.now()).total_seconds() <= 120  # Retry-After won

    due_now(delivery)
    third = delivery_send(delivery_id=delivery.pk)
    assert (third.status, third.attempts, third.response_code, third.error) == ("sent", 3, 200, "")
    assert third.sent_at is not None
    assert len(httpserver.log) == 3
    # Every attempt carried the same Standard Webhooks message id.
    assert {request.headers["webhook-id"] for request, _ in httpserver.log} == {delivery.idempotency_key}
    channel.refresh_from_db()
    assert channel.last_status == "sent"


def test_a_permanent_400_goes_dead_without_retrying(team, httpserver):
    httpserver.expect_request("/hook").respond_with_data("bad payload", status=400)
    channel = channel_of(team["workspace"], "slack", {"url": httpserver.url_for("/hook")})
    delivery = delivery_create(channel=channel, body="hello")

    dead = delivery_send(delivery_id=delivery.pk)

    assert (dead.status, dead.attempts, dead.response_code, dead.next_attempt_at) == ("dead", 1, 400, None)
    assert "bad payload" in dead.error
    assert len(httpserver.log) == 1


def test_transient_failures_go_dead_once_the_attempts_are_spent(team, httpserver, settings):
    settings.DWC_NOTIFICATIONS_MAX_ATTEMPTS = 2
    httpserver.expect_request("/hook").respond_with_data("down", status=503)
    delivery = delivery_create(channel=channel_of(team["workspace"], "discord", {"url": httpserver.url_for("/hook")}))

    assert delivery_send(delivery_id=delivery.pk).status == "retrying"
    due_now(delivery)
    assert delivery_send(delivery_id=delivery.pk).status == "dead"


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "[::1]", "localhost"])
def test_a_channel_url_to_a_private_or_loopback_address_is_refused(team, settings, host):
    settings.DWC_OUTBOUND_ALLOWLIST = []  # production's default
    delivery = delivery_create(channel=channel_of(team["workspace"], "webhook", {"url": f"http://{host}:9/hook"}))

    dead = delivery_send(delivery_id=delivery.pk)

    assert (dead.status, dead.attempts) == ("dead", 1)
    assert "not a public address" in dead.error


def test_a_connection_refused_is_transient(team):
    delivery = delivery_create(channel=channel_of(team["workspace"], "teams", {"url": "http://127.0.0.1:9/hook"}))
    retrying = delivery_send(delivery_id=delivery.pk)
    assert (retrying.status, retrying.response_code) == ("retrying", None)
    assert "could not connect" in retrying.error


def test_a_missing_credential_is_permanent(team):
    delivery = delivery_create(channel=channel_of(team["workspace"], "slack", credential="gone"))
    dead = delivery_send(delivery_id=delivery.pk)
    assert (dead.status, dead.error) == ("dead", "No credential named 'gone' in this workspace.")


def test_a_scheduled_delivery_waits_for_its_time_and_beat_queues_it(
    team, httpserver, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    channel = channel_of(team["workspace"], "webhook", {"url": httpserver.url_for("/hook")})
    delivery = delivery_create(channel=channel, body="later", send_at=timezone.now() + timedelta(hours=1))
    assert delivery.status == "scheduled"
    assert deliveries_dispatch()["scheduled"] == 0
    assert delivery_send(delivery_id=delivery.pk) is None

    Delivery.objects.filter(pk=delivery.pk).update(send_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks() as callbacks:
        assert deliveries_dispatch()["scheduled"] == 1
    assert len(callbacks) == 1  # the task is sent once the transaction commits
    assert delivery_send(delivery_id=delivery.pk).status == "sent"


def test_a_repeated_idempotency_key_returns_the_first_delivery(team):
    channel = channel_of(team["workspace"], "in_app")
    first = delivery_create(channel=channel, body="x", idempotency_key="run-1:notify")
    assert delivery_create(channel=channel, body="x", idempotency_key="run-1:notify") == first
    assert Delivery.objects.count() == 1


def test_a_disabled_channel_takes_no_delivery(team):
    channel = channel_of(team["workspace"], "in_app")
    channel.enabled = False
    channel.save()
    with pytest.raises(ValidationError):
        delivery_create(channel=channel, body="x")


# --- a worker that died mid-send ------------------------------------------------------------------


def crashed_mid_send(delivery: Delivery, settings) -> None:
    """What a worker SIGKILLed during the call leaves: the committed claim, and no outcome."""
    assert [claimed.status for claimed in _claim(delivery.pk)] == ["sending"]
    settings.DWC_NOTIFICATIONS_LEASE_SECONDS = 0


def test_a_chat_message_cut_off_mid_send_is_marked_may_have_been_delivered_and_not_sent_again(
    team, httpserver, settings
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    delivery = delivery_create(channel=channel_of(team["workspace"], "slack", {"url": httpserver.url_for("/hook")}))
    crashed_mid_send(delivery, settings)

    assert deliveries_recover() == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.may_have_been_delivered, delivery.error) == ("failed", True, INTERRUPTED)
    assert delivery_send(delivery_id=delivery.pk) is None
    assert deliveries_dispatch() == {"recovered": 0, "scheduled": 0, "retries": 0, "requeued": 0}
    assert httpserver.log == []


def test_a_webhook_cut_off_mid_send_is_sent_again_under_the_same_id(team, httpserver, settings):
    httpserver.expect_request("/hook").respond_with_data("ok")
    delivery = delivery_create(channel=channel_of(team["workspace"], "webhook", {"url": httpserver.url_for("/hook")}))
    crashed_mid_send(delivery, settings)

    assert deliveries_recover() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.may_have_been_delivered) == ("retrying", False)

    sent = delivery_send(delivery_id=delivery.pk)
    assert (sent.status, sent.attempts) == ("sent", 2)
    [(request, _)] = httpserver.log
    assert request.headers["webhook-id"] == delivery.idempotency_key


def test_an_outcome_that_arrives_after_the_recovery_changes_nothing(team, settings):
    delivery = delivery_create(channel=channel_of(team["workspace"], "email", {"to": ["a@example.com"]}))
    [claimed] = _claim(delivery.pk)
    settings.DWC_NOTIFICATIONS_LEASE_SECONDS = 0
    deliveries_recover()

    assert _record(claimed, sent=Sent(response_code=250), error=None).status == "failed"
    delivery.refresh_from_db()
    assert delivery.status == "failed"


# --- resend ---------------------------------------------------------------------------------------


def test_a_dead_delivery_is_resent_under_the_same_key_and_audited(team, httpserver):
    httpserver.expect_ordered_request("/hook").respond_with_data("gone", status=404)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    delivery = delivery_create(channel=channel_of(team["workspace"], "webhook", {"url": httpserver.url_for("/hook")}))
    assert delivery_send(delivery_id=delivery.pk).status == "dead"

    resent = delivery_resend(delivery=delivery, actor=team["admin"])
    assert (resent.status, resent.attempts, resent.error) == ("queued", 0, "")
    assert delivery_send(delivery_id=delivery.pk).status == "sent"
    assert [request.headers["webhook-id"] for request, _ in httpserver.log] == [delivery.idempotency_key] * 2
    event = AuditEvent.objects.get(action="notification_delivery.resent")
    assert (event.target_id, event.changes) == (str(delivery.pk), {"status": ["dead", "queued"]})


def test_only_dead_or_failed_deliveries_are_resent_and_only_by_admins(team):
    delivery = delivery_create(channel=channel_of(team["workspace"], "in_app"))
    with pytest.raises(Conflict):
        delivery_resend(delivery=delivery, actor=team["admin"])
    Delivery.objects.filter(pk=delivery.pk).update(status="dead")
    with pytest.raises(PermissionDenied):
        delivery_resend(delivery=delivery, actor=team["editor"])
    with pytest.raises(Http404):
        delivery_resend(delivery=delivery, actor=team["stranger"])


def test_the_tasks_travel_on_the_notifications_queue_and_beat_dispatches(settings):
    from config.celery import app

    for task in ("notifications.tasks.delivery_send", "notifications.tasks.deliveries_dispatch"):
        assert app.amqp.router.route({}, task)["queue"].name == "notifications"
    assert settings.CELERY_BEAT_SCHEDULE["notifications-dispatch"]["task"] == "notifications.tasks.deliveries_dispatch"


# --- claiming ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_messages_for_one_delivery_send_it_once(team, threaded_server):
    """A delivery whose message came several times (a redelivery, beat's re-dispatch) is claimed by one
    of the workers that race for it; the others find it `sending` and do nothing."""
    calls: list = []

    def slow(request):
        calls.append(request.headers["webhook-id"])
        time.sleep(0.3)
        return Response("ok")

    threaded_server.expect_request("/hook").respond_with_handler(slow)
    delivery = delivery_create(
        channel=channel_of(team["workspace"], "webhook", {"url": threaded_server.url_for("/hook")})
    )
    start = threading.Barrier(4)
    outcomes: list = []

    def send() -> None:
        start.wait()
        try:
            outcomes.append(delivery_send(delivery_id=delivery.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert calls == [delivery.idempotency_key]
    assert sorted(outcome is None for outcome in outcomes) == [False, True, True, True]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 1)


def test_a_retry_is_claimed_only_once_due_and_counts_its_attempt(team, httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    delivery = delivery_create(channel=channel_of(team["workspace"], "webhook", {"url": httpserver.url_for("/hook")}))
    Delivery.objects.filter(pk=delivery.pk).update(
        status="retrying", attempts=2, next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    assert _claim(delivery.pk) == []
    due_now(delivery)
    [claimed] = _claim(delivery.pk)
    assert (claimed.status, claimed.attempts, claimed.channel.pk) == ("sending", 3, delivery.channel_id)
    assert _claim(delivery.pk) == []  # sending: not claimed twice


def test_a_send_costs_few_database_round_trips(team, httpserver, django_assert_max_num_queries):
    """The claim (an UPDATE, a read with the channel), the credential, the outcome (an UPDATE of the
    delivery and one of the channel, in a savepoint here): each extra trip is paid per message."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    delivery = delivery_create(channel=channel_of(team["workspace"], "slack", {"url": httpserver.url_for("/hook")}))
    with django_assert_max_num_queries(6):
        assert delivery_send(delivery_id=delivery.pk).status == "sent"


def test_deliveries_made_together_are_sent_in_batches_and_each_outcome_is_recorded(
    team, httpserver, settings, django_capture_on_commit_callbacks
):
    settings.DWC_NOTIFICATIONS_SEND_BATCH = 4
    answers = iter([200, 500, 200, 400, 200])
    httpserver.expect_request("/hook").respond_with_handler(lambda request: Response("x", status=next(answers)))
    channel = channel_of(team["workspace"], "webhook", {"url": httpserver.url_for("/hook")})
    later = timezone.now() + timedelta(hours=1)
    messages = [{"channel": channel, "subject": f"m{i}", "idempotency_key": f"k{i}"} for i in range(5)]

    with django_capture_on_commit_callbacks() as sends:
        made = deliveries_create([*messages, {"channel": channel, "subject": "later", "send_at": later}])
    assert [delivery.status for delivery in made] == ["queued"] * 5 + ["scheduled"]
    assert len(sends) == 2  # batches of 4 and 1; the scheduled one waits for beat
    assert deliveries_create(messages) == []  # their idempotency keys are used

    queued = [str(delivery.pk) for delivery in made[:5]]
    assert deliveries_send(delivery_ids=queued[:4]) == 4
    assert deliveries_send(delivery_ids=queued[4:]) == 1
    assert deliveries_send(delivery_ids=queued) == 0  # a message delivered again does nothing

    statuses = {delivery.subject: Delivery.objects.get(pk=delivery.pk).status for delivery in made}
    assert statuses == {"m0": "sent", "m1": "retrying", "m2": "sent", "m3": "dead", "m4": "sent", "later": "scheduled"}
    retrying = Delivery.objects.get(status="retrying")
    assert (retrying.attempts, retrying.response_code) == (1, 500)
    assert retrying.next_attempt_at > timezone.now()
    assert Delivery.objects.get(subject="m3").error == "localhost answered 400: x"
    assert len(httpserver.log) == 5
