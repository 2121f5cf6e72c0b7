"""What the builder (and any client) needs to know of each node type: a JSON Schema for a whole node of
that type, its description, palette group, defaults, an example, and which fields are templates.

Read-only facts of the code, the same for every user: `GET /api/v3/node-types` serves them.
"""

import copy

from workflows.engine.nodes.registry import NODE_TYPES
from workflows.models import Node
from workflows.specs import NODE_SCHEMA, RETRY_DEFAULTS

GROUPS = ("documents", "logic", "integrations", "people")
# Node fields every type has besides its config, in the order a form shows them.
COMMON_FIELDS = ("key", "title", "retry", "timeout", "trigger_rule", "priority", "tags", "position")


def _node_schema(node_type) -> dict:
    """The node's JSON Schema: the common fields, prompt and content where the type uses them, its config."""
    properties = {name: copy.deepcopy(NODE_SCHEMA["properties"][name]) for name in COMMON_FIELDS}
    properties["type"] = {"const": node_type.name}
    required = ["key", "type"]
    if node_type.uses_prompt:
        properties["prompt"] = copy.deepcopy(NODE_SCHEMA["properties"]["prompt"])
        if node_type.requires_prompt:
            required.append("prompt")
    if node_type.uses_content:
        properties["content"] = copy.deepcopy(NODE_SCHEMA["properties"]["content"])
    properties["config"] = copy.deepcopy(node_type.config_schema)
    properties["depends_on"] = copy.deepcopy(NODE_SCHEMA["properties"]["depends_on"])
    return {"type": "object", "additionalProperties": False, "required": required, "properties": properties}


def _config_defaults(schema: dict) -> dict:
    return {name: field["default"] for name, field in schema.get("properties", {}).items() if "default" in field}


def node_types() -> list[dict]:
    """Every node type, by palette group then name."""
    catalog = []
    for name, node_type in NODE_TYPES.items():
        catalog.append(
            {
                "type": name,
                "group": node_type.group,
                "description": node_type.description,
                "schema": _node_schema(node_type),
                "defaults": {
                    "retry": dict(RETRY_DEFAULTS),
                    "timeout": None,
                    "trigger_rule": Node.TriggerRule.ALL_SUCCESS,
                    "config": _config_defaults(node_type.config_schema),
                },
                "example": copy.deepcopy(node_type.example),
                # Config keys whose strings are templates ({{ }} rendered to text), besides prompt and
                # content; values keep their types (`{{ x }}` alone is x); expressions have no braces.
                "template_fields": list(node_type.template_fields),
                "value_fields": list(node_type.value_fields),
                "expression_fields": list(node_type.expression_fields),
                "branches": list(node_type.branches),
                "uses_prompt": node_type.uses_prompt,
                "uses_content": node_type.uses_content,
            }
        )
    return sorted(catalog, key=lambda entry: (GROUPS.index(entry["group"]), entry["type"]))
