"""What the workflow API takes, as JSON Schemas for the OpenAPI documentation: request bodies built from
the rules the services validate with (workflows.specs), so that the documentation cannot drift from them."""

import copy

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.openapi import NOT_ONLY_SPACES, register_component
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.models import WORKFLOW_SLUG_PATTERN
from workflows.services.workflows import IGNORED_FIELDS as IGNORED_WORKFLOW_FIELDS
from workflows.services.workflows_bulk import BULK_ACTIONS
from workflows.specs import EXPORT_FORMAT, NODE_SCHEMA, READ_ONLY_NODE_FIELDS, WORKFLOW_SCHEMA

# Where a new workflow or credential goes: a workspace of the caller's; empty or null, their default.
WORKSPACE_OR_DEFAULT = {
    "anyOf": [{"type": "string", "format": "uuid"}, {"const": ""}, {"type": "null"}],
    "description": "A workspace of the caller's; empty or null: their personal (default) workspace.",
}


@extend_schema_field(WORKSPACE_OR_DEFAULT)
class WorkspaceOrDefaultField(serializers.UUIDField):
    """Documents WORKSPACE_OR_DEFAULT (the view reads the value)."""


READ_ONLY_FIELD = "Read-only: accepted (as a GET gave it) and not applied."


def _node_body(*, partial: bool = False) -> dict:
    schema = copy.deepcopy(NODE_SCHEMA)
    if not partial:  # a PATCH keeps the node's type
        schema["anyOf"] = [{"required": ["type"]}, {"required": ["prompt"]}, {"required": ["content"]}]
    # With a type, its config follows that type's JSON Schema (workflows.engine.nodes), and a type that
    # needs a prompt has one.
    schema["allOf"] = [
        {
            "if": {"required": ["type"], "properties": {"type": {"const": name}}},
            "then": {
                "properties": {
                    "config": copy.deepcopy(node_type.config_schema),
                    **({"prompt": {"pattern": NOT_ONLY_SPACES}} if node_type.requires_prompt else {}),
                },
                **({"required": ["prompt"]} if node_type.requires_prompt else {}),
            },
        }
        for name, node_type in NODE_TYPES.items()
    ]
    properties = schema["properties"]
    properties["key"]["description"] = "Unique in the workflow; derived from the title (or type) when absent."
    properties["type"] = {
        "enum": list(NODE_TYPES),
        "description": "Derived from prompt (document) or content (text) when absent. Each type's config has "
        "its own JSON Schema.",
    }
    properties["depends_on"]["description"] = (
        'Keys this node runs after, or {"node": key, "when": "true"|"false"} after a condition; absent: the '
        "node before it in the list."
    )
    for name in READ_ONLY_NODE_FIELDS:
        properties[name] = {"description": READ_ONLY_FIELD}
    return schema


def _workflow_body(*, creating: bool, partial: bool, names_workspace: bool = False) -> dict:
    """The body of a new workflow (`creating`: an `id` becomes its slug) or of a change to one;
    `names_workspace`: its `workspace` says where it goes (POST workflows), else it is ignored."""
    properties = copy.deepcopy(WORKFLOW_SCHEMA["properties"])
    properties["settings"]["description"] = "max_nodes, timeout, max_concurrency, on_failure."
    properties["input_schema"]["description"] = "A JSON Schema (2020-12) for the run input."
    properties["id"] = (
        {
            "type": "string",
            "pattern": WORKFLOW_SLUG_PATTERN,
            "description": "A client-chosen id, kept as the slug (unless slug is given).",
        }
        if creating
        else {"description": "Ignored: the workflow is the one in the path."}
    )
    properties["nodes"] = {
        "type": "array",
        "items": _node_body(),
        "description": "The whole graph (replacing the current one on PUT/PATCH).",
    }
    properties["steps"] = {
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "name": {"type": "string"},
                "type": {"enum": list(NODE_TYPES)},
                "config": {"type": "object"},
                "title": {"type": "string"},
            },
        },
        "description": "Older clients' linear chain [{name, type, config}], instead of nodes.",
    }
    properties["edges"] = {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["source", "target"],
            "properties": {"source": {"type": "string"}, "target": {"type": "string"}, "label": {"type": "string"}},
        },
        "description": "With nodes, as an export lists them: the dependencies instead of each node's depends_on.",
    }
    properties["format"] = {"description": "Ignored (an export document's format)."}
    properties["workspace"] = WORKSPACE_OR_DEFAULT if names_workspace else {"description": READ_ONLY_FIELD}
    for name in IGNORED_WORKFLOW_FIELDS:
        properties.setdefault(name, {"description": READ_ONLY_FIELD})
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "not": {"required": ["nodes", "steps"], "description": "Either nodes or steps."},
        "dependentRequired": {"edges": ["nodes"]},
    }
    if not partial:
        schema["required"] = ["name"]
    return schema


WORKFLOW_CREATE_BODY = _workflow_body(creating=True, partial=False, names_workspace=True)
WORKFLOW_REPLACE_BODY = _workflow_body(creating=False, partial=False)
WORKFLOW_PATCH_BODY = _workflow_body(creating=False, partial=True)
NODE_BODY = _node_body()
NODE_PATCH_BODY = _node_body(partial=True)
WORKFLOW_EXPORT = register_component(
    "WorkflowExport",
    {
        **_workflow_body(creating=True, partial=False),
        "description": "A workflow as GET workflows/{id}/export gives it.",
        "required": ["format", "name"],
    },
)
WORKFLOW_EXPORT["properties"]["format"] = {"const": EXPORT_FORMAT}
WORKFLOW_IMPORT_BODY = {
    "description": "One export document, or a list of them.",
    "oneOf": [
        {"$ref": "#/components/schemas/WorkflowExport"},
        {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/WorkflowExport"}},
    ],
}


BULK_BODY = {
    "type": "object",
    "required": ["action", "ids"],
    "properties": {
        "action": {"enum": list(BULK_ACTIONS)},
        "ids": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": "string", "format": "uuid"}},
        "tag": {"type": "string", "description": "For tag and untag: 1 to 50 characters, not only spaces."},
    },
    # tag and untag need the tag.
    "if": {"properties": {"action": {"enum": ["tag", "untag"]}}},
    "then": {"required": ["tag"], "properties": {"tag": {"maxLength": 50, "pattern": NOT_ONLY_SPACES}}},
}
