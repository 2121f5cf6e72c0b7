"""Workflow definitions as plain data (node specs): validation, normalization and the snapshot/export shape.

Every way a definition enters the system (API bodies, the `steps` list of older clients, import
files, the admin, version restore) becomes a list of *node specs* — plain dicts with every field
filled in — and passes `definition_check`. Errors are keyed the way a client can act on them:
`nodes.<key>.config.url`, `settings.max_nodes`, `input_schema`.
"""

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError

from workflows.credentials import REFERENCES as CREDENTIAL_REFERENCES
from workflows.engine import json_schema
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.graph import find_cycle
from workflows.models import NODE_KEY_PATTERN, WORKFLOW_SLUG_PATTERN, Node, Workflow

Errors = dict[str, list[str]]

EXPORT_FORMAT = "dwc-workflow/1"
MAX_NODES_LIMIT = 1000

SETTINGS_DEFAULTS = {"max_nodes": 100, "timeout": None, "max_concurrency": None, "on_failure": "fail_fast"}
RETRY_DEFAULTS = {"max_attempts": 1, "backoff_seconds": 1.0, "backoff_factor": 2.0}

WORKFLOW_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string", "maxLength": 10000},
        "slug": {"type": ["string", "null"], "pattern": WORKFLOW_SLUG_PATTERN},
        "status": {"enum": Workflow.Status.values},
        "settings": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_nodes": {"type": "integer", "minimum": 1, "maximum": MAX_NODES_LIMIT},
                "timeout": {"type": ["integer", "null"], "minimum": 1, "maximum": 604800},
                "max_concurrency": {"type": ["integer", "null"], "minimum": 1, "maximum": 10000},
                "on_failure": {"enum": ["fail_fast", "continue"]},
            },
        },
        "input_schema": {"type": "object"},
        "tags": {"type": "array", "maxItems": 20, "items": {"type": "string", "minLength": 1, "maxLength": 50}},
    },
}

DEPENDENCY_SCHEMA = {
    "anyOf": [
        {"type": "string"},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["node"],
            "properties": {"node": {"type": "string"}, "when": {"type": "string"}},
        },
    ]
}

NODE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "key": {"type": "string", "pattern": NODE_KEY_PATTERN},
        "type": {"type": "string"},
        "title": {"type": "string", "maxLength": 200},
        "prompt": {"type": "string", "maxLength": 100_000},
        "content": {"type": "string", "maxLength": 1_000_000},
        "config": {"type": "object"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 4},
        "tags": {"type": "array", "maxItems": 20, "items": {"type": "string", "minLength": 1, "maxLength": 50}},
        "position": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
        },
        "retry": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 20},
                "backoff_seconds": {"type": "number", "minimum": 0, "maximum": 3600},
                "backoff_factor": {"type": "number", "minimum": 1, "maximum": 10},
            },
        },
        "timeout": {"type": ["integer", "null"], "minimum": 1, "maximum": 604800},
        "trigger_rule": {"enum": Node.TriggerRule.values},
        "depends_on": {"type": "array", "maxItems": MAX_NODES_LIMIT, "items": DEPENDENCY_SCHEMA},
    },
}
# The node's own fields, as stored on Node and carried in specs and snapshots (besides depends_on).
NODE_VALUE_FIELDS = (
    "key",
    "type",
    "title",
    "prompt",
    "content",
    "config",
    "priority",
    "tags",
    "position",
    "retry",
    "timeout",
    "trigger_rule",
)
# What a client read from us and may send back unchanged; it is not part of the definition.
READ_ONLY_NODE_FIELDS = ("id", "order", "workflow", "created_at", "updated_at")

UNKNOWN_TYPE = "Unknown node type {type!r}. Valid types: {valid}."
TYPE_REQUIRED = "Give a type, or a prompt (document) or content (text) to infer it from."
DUPLICATE_KEY = "Another node already has the key {key!r}."
MISSING_DEPENDENCY = "Depends on {node!r}, which is not a node of this workflow."
SELF_DEPENDENCY = "A node cannot depend on itself."
WHEN_NOT_AFTER_CONDITION = "'when' only follows a condition node; {node!r} is a {type} node."
WHEN_NOT_A_BRANCH = "{node!r} has the branches {branches}; {when!r} is not one of them."
CYCLE = "The dependencies form a cycle: {path}."
TOO_MANY_NODES = "The workflow has {count} nodes; its settings allow at most {limit} (settings.max_nodes)."
REVIEW_NOT_A_NODE = "Names {node!r}, which is not a node of this workflow."
REVIEW_NOT_A_DOCUMENT = "Names {node!r}, a {type} node; only document nodes are reviewed."
REVIEW_NOT_UPSTREAM = "Names {node!r}, which does not come before this approval (it must be one of its ancestors)."


def _schema_errors(schema: dict, value: Any, prefix: str) -> Errors:
    errors: Errors = {}
    for error in json_schema.validator(schema).iter_errors(value):
        parts = [str(part) for part in error.absolute_path]
        if error.validator == "required" and isinstance(error.instance, dict):
            parts += [name for name in error.validator_value if name not in error.instance][:1]
        errors.setdefault(".".join([prefix, *parts]) if prefix else ".".join(parts), []).append(error.message)
    return errors


def workflow_fields_check(fields: dict) -> Errors:
    """Errors in the workflow-level fields that are present (name, settings, input_schema, …)."""
    errors = _schema_errors(WORKFLOW_SCHEMA, fields, "")
    schema = fields.get("input_schema")
    if isinstance(schema, dict) and "input_schema" not in errors:
        problems = json_schema.schema_problems(schema)
        if problems:
            errors["input_schema"] = problems
    return errors


def settings_with_defaults(settings: dict) -> dict:
    return {**SETTINGS_DEFAULTS, **settings}


def key_from_title(title: str) -> str:
    """`Introduction to AI` → `introduction_to_ai`: lower case, each run of other characters one `_`."""
    key = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:64].rstrip("_")
    return key or "node"


def unique_key(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    suffix = 2
    while f"{base[: 64 - len(str(suffix)) - 1]}_{suffix}" in taken:
        suffix += 1
    return f"{base[: 64 - len(str(suffix)) - 1]}_{suffix}"


def _dependency(entry: str | dict) -> dict:
    if isinstance(entry, str):
        return {"node": entry, "when": ""}
    return {"node": entry["node"], "when": entry.get("when", "")}


def node_spec_from_input(raw: Any, *, taken: set[str], previous: str | None, label: str) -> tuple[dict, Errors]:
    """Turn one node as a client sent it into a full spec, deriving what was left out.

    `taken` are the keys already used; `previous` is the node an unspecified `depends_on` means
    (None: a root). `label` names the node in errors until it has a valid key.
    """
    if not isinstance(raw, dict):
        return {}, {f"nodes.{label}": ["Must be a JSON object."]}
    raw = {name: value for name, value in raw.items() if name not in READ_ONLY_NODE_FIELDS}
    errors = _schema_errors(NODE_SCHEMA, raw, f"nodes.{raw.get('key') or label}")
    if errors:
        return {}, errors

    key = raw.get("key") or unique_key(key_from_title(raw.get("title") or raw.get("type") or "node"), taken)
    where = f"nodes.{key}"
    type_name = raw.get("type") or ("document" if raw.get("prompt") else "text" if raw.get("content") else None)
    if type_name is None:
        return {}, {f"{where}.type": [TYPE_REQUIRED]}
    node_type = NODE_TYPES.get(type_name)
    if node_type is None:
        return {}, {f"{where}.type": [UNKNOWN_TYPE.format(type=type_name, valid=", ".join(NODE_TYPES))]}

    config, type_errors = node_type.validate(
        config=raw.get("config", {}), prompt=raw.get("prompt", ""), content=raw.get("content", "")
    )
    errors = {f"{where}.{field}": messages for field, messages in type_errors.items()}
    depends_on = raw.get("depends_on", [previous] if previous else [])
    spec = {
        "key": key,
        "type": type_name,
        "title": raw.get("title", ""),
        "prompt": raw.get("prompt", ""),
        "content": raw.get("content", ""),
        "config": config,
        "priority": raw.get("priority", Node.Priority.NORMAL),
        "tags": raw.get("tags", []),
        "position": raw.get("position", {}),
        "retry": {**RETRY_DEFAULTS, **raw.get("retry", {})},
        "timeout": raw.get("timeout"),
        "trigger_rule": raw.get("trigger_rule", Node.TriggerRule.ALL_SUCCESS),
        "depends_on": [_dependency(entry) for entry in depends_on],
    }
    return spec, errors


def specs_from_input(raw_nodes: Any, *, base: list[dict] | None = None) -> list[dict]:
    """Specs for `raw_nodes` appended after `base`; each one without `depends_on` follows the one before.

    Raises ValidationError listing every problem of the nodes themselves; `definition_check` then
    checks the graph they form.
    """
    if not isinstance(raw_nodes, list):
        raise ValidationError({"nodes": ["Must be a list of node objects."]})
    specs = list(base or [])
    errors: Errors = {}
    taken = {spec["key"] for spec in specs} | {
        node["key"] for node in raw_nodes if isinstance(node, dict) and isinstance(node.get("key"), str)
    }
    previous = specs[-1]["key"] if specs else None
    for index, raw in enumerate(raw_nodes, start=len(specs)):
        spec, node_errors = node_spec_from_input(raw, taken=taken, previous=previous, label=str(index))
        errors.update(node_errors)
        if spec:
            taken.add(spec["key"])
            specs.append(spec)
            previous = spec["key"]
    if errors:
        raise ValidationError(errors)
    return specs


def steps_to_nodes(steps: Any) -> list[dict]:
    """The older clients' `steps: [{name, type, config}]`: a linear chain, `name` as the key."""
    if not isinstance(steps, list):
        raise ValidationError({"steps": ["Must be a list of {name, type, config} objects."]})
    nodes = []
    texts = ("name", "type", "title")
    for index, step in enumerate(steps):
        if (
            not isinstance(step, dict)
            or set(step) - {"name", "type", "config", "title"}
            or any(not isinstance(step.get(name, ""), str) for name in texts)
        ):
            raise ValidationError({f"steps.{index}": ["Must be an object with name, type and config (texts)."]})
        name = step.get("name") or step.get("type") or "step"
        key = name if re.fullmatch(NODE_KEY_PATTERN, name) else key_from_title(name)
        nodes.append(
            {"key": key, "title": step.get("title", name), **{k: step[k] for k in ("type", "config") if k in step}}
        )
    return nodes


def definition_check(specs: list[dict], *, max_nodes: int) -> None:
    """Whole-graph rules: unique keys, known dependencies, branch labels, no cycle, size."""
    errors: Errors = {}
    by_key: dict[str, dict] = {}
    for spec in specs:
        if spec["key"] in by_key:
            errors.setdefault(f"nodes.{spec['key']}.key", []).append(DUPLICATE_KEY.format(key=spec["key"]))
        by_key[spec["key"]] = spec
    if len(specs) > max_nodes:
        errors["nodes"] = [TOO_MANY_NODES.format(count=len(specs), limit=max_nodes)]

    edges = []
    for spec in specs:
        where = f"nodes.{spec['key']}.depends_on"
        for dependency in spec["depends_on"]:
            parent = by_key.get(dependency["node"])
            when = dependency["when"]
            if dependency["node"] == spec["key"]:
                errors.setdefault(where, []).append(SELF_DEPENDENCY)
            elif parent is None:
                errors.setdefault(where, []).append(MISSING_DEPENDENCY.format(node=dependency["node"]))
            else:
                branches = NODE_TYPES[parent["type"]].branches
                if when and not branches:
                    errors.setdefault(where, []).append(
                        WHEN_NOT_AFTER_CONDITION.format(node=parent["key"], type=parent["type"])
                    )
                elif when and when not in branches:
                    errors.setdefault(where, []).append(
                        WHEN_NOT_A_BRANCH.format(node=parent["key"], branches=", ".join(branches), when=when)
                    )
                else:
                    edges.append((parent["key"], spec["key"]))
    cycle = find_cycle(list(by_key), edges)
    if cycle:
        errors.setdefault(f"nodes.{cycle[0]}.depends_on", []).append(CYCLE.format(path=" → ".join(cycle)))
    else:
        errors.update(_review_errors(by_key, edges))
    if errors:
        raise ValidationError(errors)


def _review_errors(by_key: dict[str, dict], edges: list[tuple[str, str]]) -> Errors:
    """An approval's `documents` name document nodes upstream of it: what a reviewer can edit before
    the run goes on, or send back."""
    parents: dict[str, set[str]] = {}
    for source, target in edges:
        parents.setdefault(target, set()).add(source)
    errors: Errors = {}
    for spec in by_key.values():
        named = spec["config"].get("documents") if spec["type"] == "approval" else None
        if not named:
            continue
        ancestors, stack = set(), [spec["key"]]
        while stack:
            for parent in parents.get(stack.pop(), ()):
                if parent not in ancestors:
                    ancestors.add(parent)
                    stack.append(parent)
        where = f"nodes.{spec['key']}.config.documents"
        for key in named:
            if key not in by_key:
                errors.setdefault(where, []).append(REVIEW_NOT_A_NODE.format(node=key))
            elif by_key[key]["type"] != "document":
                errors.setdefault(where, []).append(REVIEW_NOT_A_DOCUMENT.format(node=key, type=by_key[key]["type"]))
            elif key not in ancestors:
                errors.setdefault(where, []).append(REVIEW_NOT_UPSTREAM.format(node=key))
    return errors


class Reference(NamedTuple):
    """Another object of the workspace that a node's config names."""

    kind: str  # "credential" (by name) or "workflow" (by id or slug)
    value: str
    path: str  # where the error goes: nodes.<key>.config.<field>


# Where each node type names a workflow to run (its id or slug); credentials: credentials.REFERENCES.
WORKFLOW_REFERENCES = {"loop": "workflow", "subworkflow": "workflow"}
# Jinja's delimiters: a value holding one is a template, not a name.
TEMPLATE_MARK = re.compile(r"\{[{%#]")


def references_of(specs: list[dict]) -> Iterator[Reference]:
    """The credentials and workflows the nodes name, for the save path to look up in the workspace.

    A value written as a template (`{{ input.env }}-key`) names nothing that can be looked up before a
    run, so it is left out: the run-time lookup (credentials.credential_kind_and_value,
    workflows.engine.store.child_workflow) searches only the run's own workspace and fails the step when the
    name is unknown there.
    """
    for spec in specs:
        for kind, table in (("credential", CREDENTIAL_REFERENCES), ("workflow", WORKFLOW_REFERENCES)):
            field = table.get(spec["type"])
            value = spec["config"].get(field) if field else None
            if isinstance(value, str) and value and not TEMPLATE_MARK.search(value):
                yield Reference(kind, value, f"nodes.{spec['key']}.config.{field}")


def compact_depends_on(dependencies: list[dict]) -> list:
    """The form clients write: "key", or {"node": key, "when": label} after a condition."""
    return [dep["node"] if not dep["when"] else {"node": dep["node"], "when": dep["when"]} for dep in dependencies]


def edges_of(specs: list[dict]) -> list[dict]:
    return [
        {"source": dep["node"], "target": spec["key"], "label": dep["when"]}
        for spec in specs
        for dep in spec["depends_on"]
    ]


def snapshot_of(fields: dict, specs: list[dict]) -> dict:
    """The definition a run executes: what a WorkflowVersion stores and an export carries."""
    return {
        "name": fields["name"],
        "description": fields["description"],
        "settings": settings_with_defaults(fields["settings"]),
        "input_schema": fields["input_schema"],
        "nodes": [{name: value for name, value in spec.items() if name != "depends_on"} for spec in specs],
        "edges": edges_of(specs),
    }


def nodes_from_document(document: dict) -> list[dict]:
    """Nodes of an export (edges listed apart) or of a hand-written body (depends_on in the nodes)."""
    nodes = document.get("nodes", [])
    if "edges" not in document:
        return nodes
    edges = document["edges"]
    if not isinstance(edges, list) or not isinstance(nodes, list):
        raise ValidationError({"edges": ["Must be a list of {source, target, label} objects."]})
    keys = {node.get("key") for node in nodes if isinstance(node, dict)}
    depends: dict[str, list] = {}
    for index, edge in enumerate(edges):
        if (
            not isinstance(edge, dict)
            or not isinstance(edge.get("source"), str)
            or not isinstance(edge.get("target"), str)
            or not isinstance(edge.get("label", ""), str)
        ):
            raise ValidationError(
                {f"edges.{index}": ["Must be an object with source and target node keys (and a text label)."]}
            )
        if edge["target"] not in keys:
            raise ValidationError({f"edges.{index}.target": [f"{edge['target']!r} is not a node of this workflow."]})
        label = edge.get("label") or ""
        depends.setdefault(edge["target"], []).append(
            {"node": edge["source"], "when": label} if label else edge["source"]
        )
    return [
        {**node, "depends_on": depends.get(node.get("key"), [])} if isinstance(node, dict) else node for node in nodes
    ]
