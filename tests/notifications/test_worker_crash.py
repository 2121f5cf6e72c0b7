"""A real Celery worker on the notifications queue, SIGKILLed while a delivery's call is under way. The
test plays beat (deliveries_dispatch) with a short lease: a chat message is written off as "may have
been delivered" and never sent again; a webhook is sent again by another worker under the same id."""

import signal
import time
from datetime import timedelta

import pytest
from celery import current_app
from django.utils import timezone
from werkzeug import Response

from notifications.models import Delivery, Match, Notification, Rule
from notifications.services.deliveries import INTERRUPTED, deliveries_dispatch, delivery_create, delivery_send
from notifications.services.events import events_submit
from notifications.services.templates import sample_event
from tests.notifications.conftest import channel_of
from tests.processes import wait_until
from tests.workflows.workers import start_worker, worker_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


def slow_first_call(calls: list, seconds: float = 8):
    """A receiver whose first call hangs (the worker is killed meanwhile); later ones answer at once."""

    def handler(request):
        calls.append(dict(request.headers))
        if len(calls) == 1:
            time.sleep(seconds)
        return Response("ok")

    return handler


def killed_mid_send(delivery: Delivery, calls: list, settings) -> None:
    doomed = start_worker("doomed", queues="notifications", env=worker_env())
    try:
        wait_until(lambda: len(calls) == 1, timeout=30, message="the call to arrive")
        doomed.signal_group(signal.SIGKILL)
        doomed.popen.wait(10)
    finally:
        doomed.stop()
    assert Delivery.objects.get(pk=delivery.pk).status == "sending"
    settings.DWC_NOTIFICATIONS_LEASE_SECONDS = 0


def test_a_chat_message_whose_worker_died_is_never_sent_again(team, threaded_server, settings):
    calls: list = []
    threaded_server.expect_request("/slack", method="POST").respond_with_handler(slow_first_call(calls))
    delivery = delivery_create(
        channel=channel_of(team["workspace"], "slack", {"url": threaded_server.url_for("/slack")})
    )
    killed_mid_send(delivery, calls, settings)

    assert deliveries_dispatch()["recovered"] == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.may_have_been_delivered, delivery.error) == ("failed", True, INTERRUPTED)
    assert delivery_send(delivery_id=delivery.pk) is None  # a redelivered message does nothing either
    assert len(calls) == 1


def test_a_webhook_whose_worker_died_is_sent_again_under_the_same_id(team, threaded_server, settings):
    calls: list = []
    threaded_server.expect_request("/hook", method="POST").respond_with_handler(slow_first_call(calls))
    delivery = delivery_create(
        channel=channel_of(team["workspace"], "webhook", {"url": threaded_server.url_for("/hook")})
    )
    killed_mid_send(delivery, calls, settings)

    survivor = start_worker("survivor", queues="notifications", env=worker_env())
    try:
        assert deliveries_dispatch()["recovered"] == 1
        wait_until(
            lambda: Delivery.objects.get(pk=delivery.pk).status == "sent", timeout=30, message="the delivery to be sent"
        )
    finally:
        survivor.stop()
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.may_have_been_delivered) == (2, False)
    assert [headers["Webhook-Id"] for headers in calls] == [delivery.idempotency_key] * 2


def test_a_digest_and_a_scheduled_message_survive_a_worker_killed_before_they_were_due(team, threaded_server):
    """The matches held for a digest and a delivery waiting for its send_at are rows: a worker killed
    while they wait takes nothing with it, and the next worker sends both when beat's round comes."""
    threaded_server.expect_request("/hook", method="POST").respond_with_data("ok")
    workspace = team["workspace"]
    Rule.objects.create(
        workspace=workspace, name="digest", events=["run.failed"], roles=["admin"], digest_window_seconds=3600
    )
    later = delivery_create(
        channel=channel_of(workspace, "webhook", {"url": threaded_server.url_for("/hook")}),
        subject="later",
        send_at=timezone.now() + timedelta(hours=1),
    )
    first = start_worker("first", queues="notifications", env=worker_env())
    try:
        events_submit([{**sample_event("run.failed", workspace), "id": f"e{i}"} for i in range(3)])
        wait_until(lambda: Match.objects.count() == 3, timeout=30, message="the events to be held for the digest")
    finally:
        first.signal_group(signal.SIGKILL)
        first.popen.wait(10)
        first.stop()
    assert Notification.objects.count() == 0
    assert Delivery.objects.get(pk=later.pk).status == "scheduled"

    # The hour has passed.
    Match.objects.update(digest_due_at=timezone.now())
    Delivery.objects.filter(pk=later.pk).update(send_at=timezone.now())
    second = start_worker("second", queues="notifications", env=worker_env())
    try:
        current_app.send_task("notifications.tasks.deliveries_dispatch", queue="notifications")
        wait_until(lambda: Notification.objects.count() == 1, timeout=30, message="the digest to be sent")
        wait_until(lambda: Delivery.objects.get(pk=later.pk).status == "sent", timeout=30, message="send_at")
    finally:
        second.stop()
    assert Notification.objects.get().title == "3 notifications from digest"
    assert set(Match.objects.values_list("outcome", flat=True)) == {"digested"}
