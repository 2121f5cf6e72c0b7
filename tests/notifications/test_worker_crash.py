"""A real Celery worker on the notifications queue, SIGKILLed while a delivery's call is under way. The
test plays beat (deliveries_dispatch) with a short lease: a chat message is written off as "may have
been delivered" and never sent again; a webhook is sent again by another worker under the same id."""

import signal
import time

import pytest
from werkzeug import Response

from notifications.models import Delivery
from notifications.services.deliveries import INTERRUPTED, deliveries_dispatch, delivery_create, delivery_send
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
