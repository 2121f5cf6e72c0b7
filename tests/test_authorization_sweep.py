"""Object-level authorization for every API operation with an id in its path, read from the OpenAPI schema.

For each such operation and method: a member of workspace B gets 404 for workspace A's object, the
very answer an unknown id gets (no existence leak), and a viewer of A gets 403 on every unsafe method.
A new endpoint whose path parameters this file has no object for fails here, so it cannot ship
without the check.
"""

import uuid

import pytest
from django.test import override_settings

from tests.api_world import concrete, operations
from tests.conftest import client_for
from workflows.models import Run, Workflow

pytestmark = pytest.mark.django_db

UNSAFE = ("post", "put", "patch", "delete")
# Paths owned by a user rather than a workspace: each user sees only their own, checked in their tests.
NOT_WORKSPACE_OBJECTS = (
    "/api/v3/system/worker-pings/{ping_id}",
    "/api/v3/auth/api-keys/{id}",  # tests/accounts/test_api_keys.py: someone else's key is a 404
    "/api/v3/auth/sessions/{id}",  # tests/accounts/test_login_sessions.py: someone else's session is a 404
    "/api/v3/notifications/{id}/read",  # tests/notifications/test_api.py: someone else's notification is a 404
    # tests/notifications/test_push_api.py: someone else's push subscription is a 404
    "/api/v3/notifications/push-subscriptions/{id}",
)
OPERATIONS = [(path, method) for path, method in operations() if "{" in path and path not in NOT_WORKSPACE_OBJECTS]


def call(client, method: str, path: str):
    if method == "get":
        return client.get(path)
    return getattr(client, method)(path, {}, format="json")


@override_settings(DEBUG=False)
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_an_outsider_gets_404_and_a_viewer_403_on_unsafe_methods(world, path, method):
    url = concrete(path, world)
    outsider = call(client_for(world["outsider"]), method, url)
    assert outsider.status_code == 404, (method, url, outsider.status_code, outsider.content[:300])
    if method in UNSAFE:
        viewer = call(client_for(world["viewer"]), method, url)
        assert viewer.status_code == 403, (method, url, viewer.status_code, viewer.content[:300])
    assert Run.objects.filter(pk=world["run"].pk).exists()
    assert Workflow.objects.filter(deleted_at__isnull=True, name="A's").exists()


@override_settings(DEBUG=False)
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_another_workspaces_id_and_an_unknown_id_get_the_same_404(world, path, method):
    outsider = client_for(world["outsider"])
    unknown_world = {**world, "values": {prefix: uuid.uuid4() for prefix in world["values"]}}

    theirs = call(outsider, method, concrete(path, world))
    unknown = call(outsider, method, concrete(path, unknown_world))

    assert (theirs.status_code, unknown.status_code) == (404, 404), (method, path)
    assert theirs.json() == unknown.json(), (method, path)
