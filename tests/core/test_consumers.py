"""The websocket base every consumer shares (core.consumers), through /ws/ping/."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY
from rest_framework_simplejwt.tokens import AccessToken

from config.asgi import application
from core.consumers import CLOSE_UNAUTHENTICATED, PING_ONLY

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


def open_connections() -> float:
    return REGISTRY.get_sample_value("dwc_websocket_connections_active")


def test_a_ping_socket_says_hello_answers_pings_and_is_counted_while_open(user):
    before = open_connections()

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/ping/?token={AccessToken.for_user(user)}", [ORIGIN])
        connected, _ = await communicator.connect()
        assert connected
        hello = await communicator.receive_json_from(timeout=5)
        counted = open_connections()
        await communicator.send_json_to({"action": "ping"})
        pong = await communicator.receive_json_from(timeout=5)
        await communicator.send_json_to({"action": "dance"})
        error = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return hello, counted, pong, error

    hello, counted, pong, error = async_to_sync(scenario)()

    assert hello == {"type": "hello", "user": str(user.pk)}
    assert counted == before + 1
    assert pong["type"] == "pong"
    assert error == {"type": "error", "detail": PING_ONLY}
    assert open_connections() == before


def test_an_anonymous_ping_socket_is_closed_with_4401_and_never_counted(db):
    before = open_connections()

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/ping/", [ORIGIN])
        await communicator.connect()
        output = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return output

    output = async_to_sync(scenario)()

    assert (output["type"], output["code"]) == ("websocket.close", CLOSE_UNAUTHENTICATED)
    assert open_connections() == before
