"""The inbox live on /ws/notifications/: a real daphne on the test database and Redis, real websocket
clients, deliveries sent from this process (as a Celery worker sends them) through the Redis layer."""

import json
import time
from contextlib import contextmanager

import httpx
import pytest
import redis
from django.conf import settings
from django.db import transaction
from rest_framework.renderers import JSONRenderer
from rest_framework_simplejwt.tokens import AccessToken
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accounts.models import Membership, User
from notifications import realtime
from notifications.api.serializers import NotificationSerializer
from notifications.channels.in_app import inboxes_add
from notifications.models import Notification
from notifications.services.deliveries import delivery_create, delivery_send
from tests.notifications.conftest import channel_of
from tests.processes import Process, free_port, wait_for_http
from tests.workflows.workers import worker_env

pytestmark = pytest.mark.django_db(transaction=True)

FAN_OUT = 1_000
FAN_OUT_SECONDS = 2.0


@pytest.fixture
def daphne(transactional_db):
    port = free_port()
    process = Process(
        [".venv/bin/daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"], worker_env(), "daphne"
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", process)
        yield base
    finally:
        process.stop()


@contextmanager
def socket_for(base: str, user):
    token = AccessToken.for_user(user)
    with connect(f"{base.replace('http://', 'ws://')}/ws/notifications/?token={token}", origin=base) as client:
        assert json.loads(client.recv(timeout=5))["type"] == "subscribed"
        yield client


def nothing_arrives(client, seconds: float = 1.0) -> bool:
    try:
        client.recv(timeout=seconds)
    except TimeoutError:
        return True
    except ConnectionClosed:
        return False
    return False


def test_an_in_app_delivery_reaches_its_users_sockets_with_the_unread_count_and_nobody_elses(daphne, team):
    editor, viewer = team["editor"], team["viewer"]
    channel = channel_of(team["workspace"], "in_app")
    with (
        socket_for(daphne, editor) as mine,
        socket_for(daphne, editor) as my_other_tab,
        socket_for(daphne, viewer) as theirs,
    ):
        delivery = delivery_create(channel=channel, recipient=editor, subject="Run failed", body="Step x failed.")
        assert delivery_send(delivery_id=delivery.pk).status == "sent"

        notification = Notification.objects.get(user=editor)
        expected = json.loads(JSONRenderer().render(NotificationSerializer(notification).data))
        for client in (mine, my_other_tab):
            assert json.loads(client.recv(timeout=5)) == {
                "type": "notification.created",
                "notification": expected,
                "unread": 1,
            }
        assert nothing_arrives(theirs)

        # Read in one tab (through the API), the other hears of it with the new count.
        with httpx.Client(base_url=daphne, headers={"Authorization": f"Bearer {AccessToken.for_user(editor)}"}) as api:
            assert api.post(f"/api/v3/notifications/{notification.pk}/read").status_code == 200
            for client in (mine, my_other_tab):
                assert json.loads(client.recv(timeout=5)) == {
                    "type": "notification.read",
                    "ids": [str(notification.pk)],
                    "all": False,
                    "unread": 0,
                }
            inboxes_add(
                workspace_id=team["workspace"].pk,
                user_ids=[editor.pk, editor.pk],
                delivery_id=None,
                title="Two",
                body="",
                link="",
                level="no such level",
            )
            assert json.loads(mine.recv(timeout=5))["unread"] == 1
            assert json.loads(my_other_tab.recv(timeout=5))["notification"]["level"] == "info"
            assert api.post("/api/v3/notifications/read-all").json() == {"marked": 1}
            read_all = {"type": "notification.read", "ids": [], "all": True, "unread": 0}
            assert json.loads(mine.recv(timeout=5)) == read_all
            assert json.loads(my_other_tab.recv(timeout=5)) == read_all
        assert nothing_arrives(theirs, 0.3)


def test_sending_a_delivery_again_adds_and_announces_nobody_twice(team):
    delivery = delivery_create(channel=channel_of(team["workspace"], "in_app"), body="Once")
    members = [team[role].pk for role in ("admin", "editor", "viewer")]
    first = inboxes_add(
        workspace_id=team["workspace"].pk,
        user_ids=members,
        delivery_id=delivery.pk,
        title="Once",
        body="",
        link="",
        level="info",
    )
    again = inboxes_add(
        workspace_id=team["workspace"].pk,
        user_ids=members,
        delivery_id=delivery.pk,
        title="Once",
        body="",
        link="",
        level="info",
    )
    assert len(first) == 3 and again == []
    assert Notification.objects.filter(delivery=delivery).count() == 3


def test_a_thousand_members_get_their_rows_and_their_pushes_well_within_two_seconds(team):
    workspace = team["workspace"]
    users = User.objects.bulk_create([User(email=f"fan-{index}@example.com") for index in range(FAN_OUT)])
    Membership.objects.bulk_create([Membership(workspace=workspace, user=user, role="viewer") for user in users])
    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    listener = client.pubsub()
    listener.psubscribe(f"{prefix}__group__{realtime.user_group('*')}")
    listener.get_message(timeout=1)  # the subscription's confirmation

    started = time.perf_counter()
    with transaction.atomic():
        added = inboxes_add(
            workspace_id=workspace.pk,
            user_ids=[user.pk for user in users],
            delivery_id=None,
            title="Run failed",
            body="",
            link="/dashboard/runs/x/",
            level="error",
        )
    elapsed = time.perf_counter() - started

    assert len(added) == FAN_OUT
    # Pub/sub channels are shared by every Redis database: only these users' count.
    expected = {f"{prefix}__group__{realtime.user_group(user.pk)}".encode() for user in users}
    received = set()
    deadline = time.monotonic() + 5
    while received != expected and time.monotonic() < deadline:
        message = listener.get_message(timeout=1)
        if message and message["type"] == "pmessage" and message["channel"] in expected:
            received.add(message["channel"])
    listener.close()
    assert received == expected
    print(f"{FAN_OUT} inboxes: rows, unread counts and pushes in {elapsed * 1000:.0f} ms")
    assert elapsed < FAN_OUT_SECONDS / 4
