"""JSON from clients is parsed within limits: a body nested too deep is a 400 problem, never a 500.

Every API operation that takes a body (read from the OpenAPI schema), the login, an inbound webhook and
a websocket message get the same 2 KB of brackets; the operations also get text the database cannot
store (tests/core/test_request_text.py checks how each such field is named).
"""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from config.asgi import application
from core.json_input import MAX_DEPTH, TOO_DEEP
from core.problems import PROBLEM_CONTENT_TYPE
from tests.api_world import concrete, operations
from tests.conftest import client_for
from workflows.models import Run
from workflows.services.webhooks import webhook_create
from workflows.services.workflows import workflow_create

DEEP = "[" * 1000 + "]" * 1000
# NUL and a lone surrogate in the fields bodies most often have (core.request_text).
UNSTORABLE_BODY = '{"name": "\\u0000", "email": "a\\u0000@example.org", "tags": ["\\ud800"], "input": {"k": "\\u0000"}}'


def nested(depth: int) -> str:
    return '{"name": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def post_raw(client: APIClient, path: str, body: str, method: str = "post"):
    return getattr(client, method)(path, body, content_type="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v3/auth/token", "/api/v3/auth/register", "/api/v3/auth/token/refresh"])
def test_a_deeply_nested_body_is_a_400_problem_before_login(path):
    answer = post_raw(APIClient(), path, DEEP)

    assert answer.status_code == 400, answer.content
    assert answer["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert TOO_DEEP in answer.json()["detail"]


@pytest.mark.django_db
def test_the_limit_is_the_depth_of_the_body(user_api):
    at_limit = post_raw(user_api, "/api/v3/workflows", nested(MAX_DEPTH))
    over = post_raw(user_api, "/api/v3/workflows", nested(MAX_DEPTH + 1))

    assert at_limit.status_code == 400 and TOO_DEEP not in at_limit.content.decode()  # refused as a name
    assert over.status_code == 400 and TOO_DEEP in over.json()["detail"]


BODY_OPERATIONS = [(path, method) for path, method in operations(("post", "put", "patch"))]


@override_settings(DEBUG=False)
@pytest.mark.django_db
@pytest.mark.parametrize(("path", "method"), BODY_OPERATIONS)
def test_no_operation_answers_a_deep_body_or_unstorable_text_with_a_500(world, path, method):
    url = concrete(path, world) if "{" in path else path
    client = client_for(world["owner"])

    for body in (DEEP, UNSTORABLE_BODY):
        answer = post_raw(client, url, body, method)
        assert answer.status_code < 500, (method, url, answer.content[:300])
        if answer.status_code == 400:
            assert answer["Content-Type"] == PROBLEM_CONTENT_TYPE


@pytest.mark.django_db
def test_an_inbound_webhook_refuses_a_deeply_nested_body(user):
    from accounts.access import personal_workspace

    workflow = workflow_create(
        actor=user, workspace=personal_workspace(user), data={"name": "Hooked", "status": "active", "nodes": []}
    )
    _hook, token = webhook_create(workflow=workflow, actor=user)

    answer = APIClient().post(f"/hooks/{token}/", DEEP, content_type="application/json")

    assert answer.status_code == 400, answer.content
    assert answer["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert answer.json()["errors"] == {"body": [TOO_DEEP]}
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_deeply_nested_websocket_message_gets_an_error_and_the_connection_stays(user):
    path = f"/ws/ping/?token={AccessToken.for_user(user)}"

    async def scenario():
        communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://testserver")])
        connected, _ = await communicator.connect()
        assert connected
        assert (await communicator.receive_json_from())["type"] == "hello"
        await communicator.send_to(text_data=DEEP)
        refused = await communicator.receive_json_from()
        await communicator.send_json_to({"action": "ping"})
        answered = await communicator.receive_json_from()
        await communicator.disconnect()
        return refused, answered

    refused, answered = async_to_sync(scenario)()

    assert refused["type"] == "error" and TOO_DEEP in refused["detail"]
    assert answered["type"] == "pong"
