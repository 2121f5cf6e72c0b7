"""Every GET operation of the OpenAPI schema answers its owner with JSON its schema documents.

Schemathesis (tests/test_api_fuzz.py) mostly meets 404s for ids it makes up; here the ids are
workspace A's real objects (tests/api_world.py), so a list served where the schema promises a page
(or the reverse) fails. OpenAPI 3.0's `nullable` is turned into JSON Schema's null type.
"""

import pytest
from django.test import override_settings
from jsonschema import Draft202012Validator

from tests.api_world import api_schema, concrete, operations
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# Answers that are not JSON documents (CSV and NDJSON exports, file downloads).
NOT_JSON = {
    "/api/v3/analytics/export",
    "/api/v3/audit/events/export",
    "/api/v3/documents/{id}/download",
    "/api/v3/workflows/{id}/export",
}
NOT_WORKSPACE_OBJECTS = {"/api/v3/system/worker-pings/{ping_id}", "/api/v3/auth/api-keys/{id}"}
# The engine's operators' reads: a staff member gets them, the owner of a workspace 403.
STAFF_ONLY = {"/api/v3/engine"}
OPERATIONS = [
    path for path, method in operations(("get",)) if path not in NOT_JSON and path not in NOT_WORKSPACE_OBJECTS
]


def json_schema(node):
    """OpenAPI 3.0 schema → JSON Schema: `nullable: true` becomes a null alternative."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def validator_for(path: str) -> Draft202012Validator:
    document = api_schema()
    response = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    # The components ride along in the root, so that "#/components/schemas/..." resolves there.
    return Draft202012Validator({"allOf": [json_schema(response)], "components": json_schema(document["components"])})


@override_settings(DEBUG=False)
@pytest.mark.parametrize("path", OPERATIONS)
def test_the_owner_gets_what_the_schema_documents(world, path):
    url = concrete(path, world) if "{" in path else path
    reader = UserFactory(is_staff=True) if path in STAFF_ONLY else world["owner"]
    answer = client_for(reader).get(url, HTTP_ACCEPT="application/json")
    assert answer.status_code == 200, (url, answer.status_code, answer.content[:300])
    errors = sorted(validator_for(path).iter_errors(answer.json()), key=lambda error: list(error.absolute_path))
    assert not errors, (url, [f"{list(error.absolute_path)}: {error.message}"[:300] for error in errors[:5]])
