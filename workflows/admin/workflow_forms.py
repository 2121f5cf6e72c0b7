"""The workflow admin's forms and inlines: the workflow, its nodes and edges, validated through the node registry
and the graph rules as API edits are."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from core.request_text import StorableJSONFormField
from workflows.admin.read_only import ReadOnlyTabularInline
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.graph import find_cycle
from workflows.models import Edge, Node, Workflow, WorkflowVersion
from workflows.selectors import workflow_specs
from workflows.services.references import workflow_references_check
from workflows.services.workflows import SLUG_TAKEN
from workflows.specs import (
    CYCLE,
    MAX_NODES_LIMIT,
    TOO_MANY_NODES,
    node_spec_from_input,
    settings_with_defaults,
    workflow_fields_check,
)

# Fields of the workflow form whose changes the audit trail shows; the inlines show as the node keys, the
# new version and, on the change page, one node.* event per node added, changed or deleted.
AUDITED_WORKFLOW_FIELDS = ("name", "description", "slug", "status", "settings", "input_schema")
# The node inline's formset prefix (Node.workflow's related_name); edge checks read its rows.
NODE_PREFIX = "nodes"
NODE_FIELDS = [
    "key",
    "type",
    "title",
    "priority",
    "trigger_rule",
    "timeout",
    "order",
    "prompt",
    "content",
    "config",
    "retry",
    "tags",
    "position",
]

SELF_EDGE = "An edge cannot lead from a node to itself."
LABEL_NOT_AFTER_CONDITION = "Only edges leaving a condition node carry a label; {key!r} is a {type} node."
LABEL_NOT_A_BRANCH = "{key!r} has the branches {branches}; {label!r} is not one of them."
EDGE_TO_DELETED_NODE = "This edge uses {key!r}, which is being deleted; delete the edge too."
RUN_NOW_ONE_AT_A_TIME = "Run now takes one workflow at a time."
RUN_NOW_DELETED = "{name} is deleted; restore it before running it."
RUN_NOW_TEMPLATE = "admin/workflows/workflow/run_now.html"


def error_text(error: Exception) -> str:
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {message}" for field, items in error.message_dict.items() for message in items)
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    return str(error)


class WorkflowForm(forms.ModelForm):
    class Meta:
        model = Workflow
        fields = ["name", "workspace", "slug", "status", "description", "settings", "input_schema"]
        field_classes = {"settings": StorableJSONFormField, "input_schema": StorableJSONFormField}

    def clean(self):
        cleaned = super().clean()
        for name in ("settings", "input_schema"):
            if name in cleaned and cleaned[name] is None:
                cleaned[name] = {}
        checked = {name: cleaned[name] for name in ("settings", "input_schema") if name in cleaned}
        for path, field_messages in workflow_fields_check(checked).items():
            field, _, rest = path.partition(".")
            for message in field_messages:
                self.add_error(field, f"{rest}: {message}" if rest else message)
        # Django checks the (workspace, slug) constraint only when both are form fields, and the
        # workspace is read-only on the change page.
        slug = cleaned.get("slug")
        if slug and "workspace" not in self.fields:
            taken = Workflow.objects.filter(workspace_id=self.instance.workspace_id, slug=slug)
            if taken.exclude(pk=self.instance.pk).exists():
                self.add_error("slug", SLUG_TAKEN)
        return cleaned


class NodeForm(forms.ModelForm):
    type = forms.ChoiceField(choices=[(name, name) for name in NODE_TYPES])

    class Meta:
        model = Node
        fields = NODE_FIELDS
        field_classes = {name: StorableJSONFormField for name in ("config", "retry", "tags", "position")}
        widgets = {
            "prompt": forms.Textarea(attrs={"rows": 3, "cols": 80}),
            "content": forms.Textarea(attrs={"rows": 3, "cols": 80}),
            "config": forms.Textarea(attrs={"rows": 4, "cols": 80}),
            "retry": forms.Textarea(attrs={"rows": 1, "cols": 60}),
            "tags": forms.Textarea(attrs={"rows": 1, "cols": 60}),
            "position": forms.Textarea(attrs={"rows": 1, "cols": 30}),
        }

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned  # the registry check needs well-formed fields; their own errors come first
        # The same check an API body or an import goes through; empty JSON fields take its defaults.
        raw = {name: cleaned[name] for name in NODE_FIELDS if name != "order" and cleaned.get(name) is not None}
        spec, errors = node_spec_from_input(raw, taken=set(), previous=None, label=raw["key"])
        prefix = f"nodes.{raw['key']}."
        for path, field_messages in errors.items():
            rest = path.removeprefix(prefix)
            field = rest.split(".")[0]
            for message in field_messages:
                if field in self.fields:
                    self.add_error(field, message if rest == field else f"{rest}: {message}")
                else:
                    self.add_error(None, f"{rest}: {message}")
        if not errors:
            # Store what the API would store: the normalized config (delay `duration` → `seconds`).
            cleaned.update({name: spec[name] for name in ("config", "retry", "tags", "position")})
        return cleaned


class NodeFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        count = sum(1 for form in self.initial_forms if not self._should_delete_form(form)) + sum(
            1 for form in self.extra_forms if form.has_changed() and not self._should_delete_form(form)
        )
        settings = self.instance.settings if isinstance(self.instance.settings, dict) else {}
        limit = settings_with_defaults(settings)["max_nodes"]
        if isinstance(limit, int) and count > limit:
            raise ValidationError(TOO_MANY_NODES.format(count=count, limit=limit))
        self._check_references()

    def _check_references(self) -> None:
        """What the API refuses, refused here: a node naming a credential or workflow not in the workspace."""
        workflow = self.instance
        if workflow.workspace_id is None:
            return  # the workflow form reports the missing workspace
        kept = [form for form in self.forms if not self._should_delete_form(form)]
        if any(form.errors for form in kept):
            return  # the rows' own errors first: the check needs well-formed configs
        specs = [form.cleaned_data for form in kept if form.cleaned_data.get("key")]
        try:
            workflow_references_check(
                workspace=workflow.workspace,
                specs=specs,
                held=[] if workflow._state.adding else workflow_specs(workflow),
                workflow=workflow,
                slugs={workflow.slug} if workflow.slug else set(),
            )
        except ValidationError as error:
            raise ValidationError(
                [f"{path}: {message}" for path, messages in error.message_dict.items() for message in messages]
            ) from error


def _posted_node_rows(data) -> dict[str, dict]:
    """The node inline's rows as posted, by node id.

    Edges are checked in their own formset, but a node's type may change, or the node be deleted,
    in the same save; reading its posted row keeps a label check honest and an edge from pointing
    at a deleted node (a foreign-key error at commit).
    """
    to_bool = forms.BooleanField(required=False).to_python
    try:
        total = min(int(data.get(f"{NODE_PREFIX}-TOTAL_FORMS", 0)), MAX_NODES_LIMIT)
    except ValueError:
        total = 0
    rows = {}
    for index in range(total):
        node_id = data.get(f"{NODE_PREFIX}-{index}-id")
        if node_id:
            rows[node_id] = {
                "type": data.get(f"{NODE_PREFIX}-{index}-type"),
                "deleted": to_bool(data.get(f"{NODE_PREFIX}-{index}-DELETE")),
            }
    return rows


class EdgeForm(forms.ModelForm):
    class Meta:
        model = Edge
        fields = ["source", "target", "label"]

    def clean(self):
        cleaned = super().clean()
        source, target, label = cleaned.get("source"), cleaned.get("target"), cleaned.get("label", "")
        if source is None or target is None:
            return cleaned
        # Checked here rather than left to the model's check constraint, whose message names no field.
        if source == target:
            self.add_error("target", SELF_EDGE)
            return cleaned
        posted = _posted_node_rows(self.data)
        if self.has_changed():
            for node in (source, target):
                if posted.get(str(node.pk), {}).get("deleted"):
                    self.add_error(None, EDGE_TO_DELETED_NODE.format(key=node.key))
        if label:
            type_name = posted.get(str(source.pk), {}).get("type") or source.type
            branches = NODE_TYPES[type_name].branches if type_name in NODE_TYPES else ()
            if not branches:
                self.add_error("label", LABEL_NOT_AFTER_CONDITION.format(key=source.key, type=type_name))
            elif label not in branches:
                self.add_error(
                    "label", LABEL_NOT_A_BRANCH.format(key=source.key, branches=", ".join(branches), label=label)
                )
        return cleaned


class EdgeFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        deleted_nodes = {node_id for node_id, row in _posted_node_rows(self.data).items() if row["deleted"]}
        keys = [
            key
            for pk, key in Node.objects.filter(workflow=self.instance).values_list("pk", "key")
            if str(pk) not in deleted_nodes
        ]
        edges = []
        for form in self.forms:
            if self._should_delete_form(form) or not getattr(form, "cleaned_data", None):
                continue
            source, target = form.cleaned_data.get("source"), form.cleaned_data.get("target")
            if source is not None and target is not None and source.key in keys and target.key in keys:
                edges.append((source.key, target.key))
        cycle = find_cycle(keys, edges)
        if cycle:
            raise ValidationError(CYCLE.format(path=" → ".join(cycle)))


class NodeInline(admin.StackedInline):
    model = Node
    form = NodeForm
    formset = NodeFormSet
    extra = 0
    ordering = ["order", "created_at"]
    fields = [
        ("key", "type", "title"),
        ("priority", "trigger_rule", "timeout", "order"),
        "prompt",
        "content",
        "config",
        ("retry", "tags", "position"),
    ]


class EdgeInline(admin.TabularInline):
    model = Edge
    form = EdgeForm
    formset = EdgeFormSet
    fk_name = "workflow"
    extra = 0
    fields = ["source", "target", "label"]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        # An edge joins two nodes of this workflow; the form class is built per request, so this is safe.
        nodes = Node.objects.filter(workflow=obj) if obj is not None else Node.objects.none()
        for name in ("source", "target"):
            formset.form.base_fields[name].queryset = nodes
        return formset

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("source", "target")


class WorkflowVersionInline(ReadOnlyTabularInline):
    model = WorkflowVersion
    ordering = ["-number"]
    fields = ["number", "note", "created_by", "created_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")


class RunNowForm(forms.Form):
    input = StorableJSONFormField(
        label="Input (JSON)",
        required=False,  # an empty box means {}; JSONField would also call {} "empty" if required
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 12, "cols": 80, "class": "vLargeTextField"}),
        help_text="The run's input, a JSON object; it is checked against the workflow's input schema.",
    )

    def add_service_error(self, error: Exception) -> None:
        """Show what run_trigger refused: input errors under the field, the rest above the form."""
        if not isinstance(error, ValidationError) or not hasattr(error, "error_dict"):
            self.add_error(None, error_text(error))
            return
        for path, field_messages in error.message_dict.items():
            rest = path.removeprefix("input").removeprefix(".")
            for message in field_messages:
                self.add_error("input", f"{rest}: {message}" if rest else message)
