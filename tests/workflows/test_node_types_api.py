"""GET node-types: what the builder makes its palette and forms from. Every type is there, its schema
is a valid JSON Schema that its own example satisfies, and what it says matches the engine's types."""

import pytest
from jsonschema import Draft202012Validator
from rest_framework.test import APIClient

from workflows.engine.nodes.registry import NODE_TYPES
from workflows.node_catalog import GROUPS

pytestmark = pytest.mark.django_db


def test_every_node_type_comes_with_a_schema_its_example_satisfies(user_api):
    answer = user_api.get("/api/v3/node-types")
    assert answer.status_code == 200, answer.content
    catalog = answer.json()
    assert sorted(entry["type"] for entry in catalog) == sorted(NODE_TYPES)
    assert [GROUPS.index(entry["group"]) for entry in catalog] == sorted(GROUPS.index(e["group"]) for e in catalog)
    for entry in catalog:
        Draft202012Validator.check_schema(entry["schema"])
        validator = Draft202012Validator(entry["schema"])
        example = {**entry["example"], "type": entry["type"]}
        assert not list(validator.iter_errors(example)), (
            entry["type"],
            [e.message for e in validator.iter_errors(example)],
        )
        config_schema = entry["schema"]["properties"]["config"]
        for name, value in entry["defaults"]["config"].items():
            assert config_schema["properties"][name]["default"] == value
        assert entry["description"] == NODE_TYPES[entry["type"]].description


def test_the_schema_says_which_fields_a_type_has(user_api):
    by_type = {entry["type"]: entry for entry in user_api.get("/api/v3/node-types").json()}
    assert "prompt" in by_type["document"]["schema"]["required"]
    assert "content" in by_type["text"]["schema"]["properties"]
    assert "prompt" not in by_type["http_request"]["schema"]["properties"]
    assert by_type["condition"]["branches"] == ["true", "false"]
    assert "url" in by_type["http_request"]["template_fields"]
    assert by_type["approval"]["group"] == "people"
    # A node that leaves out a field gets these (as the API stores it).
    assert by_type["http_request"]["defaults"]["config"]["method"] == "GET"
    assert by_type["delay"]["defaults"]["trigger_rule"] == "all_success"


def test_node_types_are_for_signed_in_users():
    assert APIClient().get("/api/v3/node-types").status_code == 401
