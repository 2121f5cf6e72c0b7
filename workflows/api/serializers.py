"""Shapes of what the workflow API returns (what it takes is documented in request_bodies). Input is
validated by the services (workflows.specs), so that the API, the admin, import files and commands share
one set of rules."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from workflows.models import Document, Node, Run, StepRun, Workflow, WorkflowVersion
from workflows.services.workflows_bulk import BULK_ACTIONS
from workflows.specs import NODE_VALUE_FIELDS, settings_with_defaults


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
        tags = getattr(workflow, "tag_list", None)  # loaded with the workflow (selectors.with_list_data)
        return [tag.name for tag in (workflow.tag_set.all() if tags is None else tags)]


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


class BulkResultSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=BULK_ACTIONS)
    count = serializers.IntegerField(help_text="How many workflows it changed.")


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
            "crashes",
        ]


class PauseQuerySerializer(serializers.Serializer):
    now = serializers.BooleanField(required=False, default=False)


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
            "pause_scope",
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
    edits = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=1_000_000, trim_whitespace=False),
        required=False,
        help_text="With approved: true, new content for documents under review (the approval's `documents`), "
        "by node key; each becomes a new version written by you, and the steps after the approval read it.",
    )


class RequestChangesSerializer(serializers.Serializer):
    comment = serializers.CharField(
        max_length=2000, help_text="What to change: added to the prompts of the documents under review."
    )


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


class DocumentVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = ["id", "run", "node_key", "version", "title", "created_at"]


class DiffSpanSerializer(serializers.Serializer):
    op = serializers.ChoiceField(
        choices=["equal", "insert", "delete"],
        help_text="equal: in both versions; delete: only in `against`; insert: only in `document`.",
    )
    text = serializers.CharField(help_text="The span's text, whitespace and line breaks included.")


class DiffStatsSerializer(serializers.Serializer):
    insertions = serializers.IntegerField(min_value=0, help_text="Words inserted (punctuation marks count).")
    deletions = serializers.IntegerField(min_value=0, help_text="Words deleted.")
    unchanged = serializers.IntegerField(min_value=0, help_text="Words in both versions.")


class DocumentDiffSerializer(serializers.Serializer):
    """The changes from `against` (the older side, usually) to `document` (documentation and output only)."""

    document = DocumentVersionSerializer(help_text="The document of the path: the new side.")
    against = DocumentVersionSerializer(help_text="The version it is compared with: the old side.")
    unified = serializers.CharField(
        help_text="A unified diff of the lines (`diff -u`, files labelled v<version>); empty when equal."
    )
    words = DiffSpanSerializer(
        many=True, help_text="Both texts as spans: equal + delete spans give `against`, equal + insert `document`."
    )
    stats = DiffStatsSerializer()


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
