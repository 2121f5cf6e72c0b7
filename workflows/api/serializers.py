"""Shapes of what the workflow API returns. Input is validated by the services (workflows.specs),
so that the API, the admin, import files and commands share one set of rules."""

import copy

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.openapi import NOT_ONLY_SPACES, register_component
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.models import WORKFLOW_SLUG_PATTERN, Document, Node, Run, StepRun, Workflow, WorkflowVersion
from workflows.services.workflows import IGNORED_FIELDS as IGNORED_WORKFLOW_FIELDS
from workflows.services.workflows_bulk import BULK_ACTIONS
from workflows.specs import (
    EXPORT_FORMAT,
    NODE_SCHEMA,
    NODE_VALUE_FIELDS,
    READ_ONLY_NODE_FIELDS,
    WORKFLOW_SCHEMA,
    settings_with_defaults,
)


class NodeSerializer(serializers.ModelSerializer):
    depends_on = serializers.SerializerMethodField(
        help_text='Keys this node runs after; {"node": key, "when": "true"|"false"} after a condition.'
    )

    class Meta:
        model = Node
        fields = [
            "id",
            "workflow",
            *NODE_VALUE_FIELDS,
            "order",
            "depends_on",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.JSONField()))
    def get_depends_on(self, node: Node) -> list:
        return node.depends_on


class EdgeSerializer(serializers.Serializer):
    source = serializers.CharField(help_text="Key of the node that runs first.")
    target = serializers.CharField(help_text="Key of the node that runs after it.")
    label = serializers.CharField(allow_blank=True, help_text='"true"/"false" on the branches of a condition.')


class WorkflowListSerializer(serializers.ModelSerializer):
    settings = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    node_count = serializers.IntegerField(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)

    class Meta:
        model = Workflow
        fields = [
            "id",
            "slug",
            "workspace",
            "name",
            "description",
            "status",
            "settings",
            "input_schema",
            "tags",
            "version",
            "node_count",
            "created_by",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_settings(self, workflow: Workflow) -> dict:
        return settings_with_defaults(workflow.settings)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, workflow: Workflow) -> list[str]:
        return [tag.name for tag in workflow.tag_set.all()]


class WorkflowSerializer(WorkflowListSerializer):
    nodes = NodeSerializer(many=True, read_only=True, source="ordered_nodes")
    edges = serializers.SerializerMethodField()

    class Meta(WorkflowListSerializer.Meta):
        fields = [*WorkflowListSerializer.Meta.fields, "nodes", "edges"]

    @extend_schema_field(EdgeSerializer(many=True))
    def get_edges(self, workflow: Workflow) -> list[dict]:
        return [
            {
                "source": dep if isinstance(dep, str) else dep["node"],
                "target": node.key,
                "label": "" if isinstance(dep, str) else dep["when"],
            }
            for node in workflow.ordered_nodes
            for dep in node.depends_on
        ]


# Where a new workflow or credential goes: a workspace of the caller's; empty or null, their default.
WORKSPACE_OR_DEFAULT = {
    "anyOf": [{"type": "string", "format": "uuid"}, {"const": ""}, {"type": "null"}],
    "description": "A workspace of the caller's; empty or null: their personal (default) workspace.",
}


@extend_schema_field(WORKSPACE_OR_DEFAULT)
class WorkspaceOrDefaultField(serializers.UUIDField):
    """Documents WORKSPACE_OR_DEFAULT (the view reads the value)."""


# What POST/PUT/PATCH workflows and nodes take, from the JSON Schemas the service validates with
# (workflows.specs), so that the documentation cannot drift from the rules.
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


class BulkResultSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=BULK_ACTIONS)
    count = serializers.IntegerField(help_text="How many workflows it changed.")


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


class VersionListSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)

    class Meta:
        model = WorkflowVersion
        fields = ["number", "note", "created_by", "created_at"]


class VersionSerializer(VersionListSerializer):
    class Meta(VersionListSerializer.Meta):
        fields = [*VersionListSerializer.Meta.fields, "snapshot"]


class StepSummarySerializer(serializers.ModelSerializer):
    key = serializers.CharField(source="node_key")
    type = serializers.CharField(source="node_type")

    class Meta:
        model = StepRun
        fields = ["key", "type", "status", "attempt", "started_at", "finished_at", "duration_ms"]


class StepRunSerializer(StepSummarySerializer):
    class Meta(StepSummarySerializer.Meta):
        fields = [
            "id",
            *StepSummarySerializer.Meta.fields,
            "input",
            "output",
            "error",
            "usage",
            "state",
            "queued_at",
            "heartbeat_at",
            "worker",
        ]


class RunSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)
    duration_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "workflow",
            "workspace",
            "version",
            "status",
            "trigger",
            "input",
            "output",
            "error",
            "parent_step",
            "source_run",
            "event_depth",
            "refused_triggers",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "deadline_at",
            "duration_seconds",
        ]

    def get_duration_seconds(self, run: Run) -> float | None:
        if run.started_at is None or run.finished_at is None:
            return None
        return round((run.finished_at - run.started_at).total_seconds(), 3)


class RunDetailSerializer(RunSerializer):
    steps = StepSummarySerializer(many=True, read_only=True)
    usage = serializers.SerializerMethodField(help_text="Language-model tokens and cost over all steps.")

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "steps", "usage"]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_usage(self, run: Run) -> dict:
        usages = [step.usage for step in run.steps.all() if step.usage]
        return {
            "tokens_in": sum(usage.get("tokens_in", 0) for usage in usages),
            "tokens_out": sum(usage.get("tokens_out", 0) for usage in usages),
            "cost": round(sum(usage.get("cost", 0) for usage in usages), 6),
        }


class RunTriggerSerializer(serializers.Serializer):
    input = serializers.DictField(required=False, help_text="The run input; checked against the input_schema.")


class RunBatchSerializer(serializers.Serializer):
    inputs = serializers.ListField(child=serializers.DictField(), min_length=1, max_length=1000)


class LegacyTriggerSerializer(serializers.Serializer):
    workflow_id = serializers.UUIDField()
    payload = serializers.DictField(required=False, allow_null=True, help_text="The run input; null: none ({}).")


class ApprovalSerializer(serializers.Serializer):
    approved = serializers.BooleanField()
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class RegenerateSerializer(serializers.Serializer):
    prompt = serializers.CharField(
        required=False, max_length=100_000, help_text="A prompt (template) replacing the node's for this generation."
    )
    cascade = serializers.BooleanField(default=False, help_text="Also run again every step after this one.")


class DocumentSerializer(serializers.ModelSerializer):
    workflow_name = serializers.CharField(source="workflow.name", read_only=True)

    class Meta:
        model = Document
        fields = [
            *("id", "workspace", "workflow", "workflow_name", "run", "step", "node_key", "version", "previous"),
            *("title", "format", "provider", "model", "tokens_in", "tokens_out", "cost", "latency_ms", "created_at"),
        ]


class DocumentSourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = ["id", "node_key", "version", "title"]


class DocumentDetailSerializer(DocumentSerializer):
    sources = DocumentSourceSerializer(many=True, read_only=True, help_text="The documents it was generated from.")
    derived = DocumentSourceSerializer(many=True, read_only=True, help_text="Documents generated from it.")

    class Meta(DocumentSerializer.Meta):
        fields = [*DocumentSerializer.Meta.fields, "content", "metadata", "sources", "derived"]


class RunEventSerializer(serializers.Serializer):
    """The DESIGN §9 envelope of a run event (documentation only: events are built by workflows.events)."""

    type = serializers.CharField()
    id = serializers.CharField(help_text="<run id>:<seq>")
    seq = serializers.IntegerField()
    ts = serializers.DateTimeField()
    workspace = serializers.UUIDField()
    workflow = serializers.UUIDField()
    run = serializers.UUIDField()
    step = serializers.CharField(allow_null=True)
    data = serializers.JSONField()
