"""The operators' view of workflows. Forms validate through the node registry and the graph rules;
actions and versions go through the services, as API edits do."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponse

from workflows import definitions
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.graph import find_cycle
from workflows.models import Edge, Node, Workflow, WorkflowTag, WorkflowVersion
from workflows.services.definitions import (
    SLUG_TAKEN,
    workflow_duplicate,
    workflow_export,
    workflow_restore,
    workflow_version_record,
    workflows_bulk,
)

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


def _error_text(error: Exception) -> str:
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {message}" for field, items in error.message_dict.items() for message in items)
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    return str(error)


class WorkflowForm(forms.ModelForm):
    class Meta:
        model = Workflow
        fields = ["name", "workspace", "slug", "status", "description", "settings", "input_schema"]

    def clean(self):
        cleaned = super().clean()
        for name in ("settings", "input_schema"):
            if name in cleaned and cleaned[name] is None:
                cleaned[name] = {}
        checked = {name: cleaned[name] for name in ("settings", "input_schema") if name in cleaned}
        for path, field_messages in definitions.workflow_fields_check(checked).items():
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
        spec, errors = definitions.node_spec_from_input(raw, taken=set(), previous=None, label=raw["key"])
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
        limit = definitions.settings_with_defaults(settings)["max_nodes"]
        if isinstance(limit, int) and count > limit:
            raise ValidationError(definitions.TOO_MANY_NODES.format(count=count, limit=limit))


def _posted_node_rows(data) -> dict[str, dict]:
    """The node inline's rows as posted, by node id.

    Edges are checked in their own formset, but a node's type may change, or the node be deleted,
    in the same save; reading its posted row keeps a label check honest and an edge from pointing
    at a deleted node (a foreign-key error at commit).
    """
    to_bool = forms.BooleanField(required=False).to_python
    try:
        total = min(int(data.get(f"{NODE_PREFIX}-TOTAL_FORMS", 0)), definitions.MAX_NODES_LIMIT)
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
            raise ValidationError(definitions.CYCLE.format(path=" → ".join(cycle)))


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


class WorkflowVersionInline(admin.TabularInline):
    model = WorkflowVersion
    extra = 0
    can_delete = False
    ordering = ["-number"]
    fields = ["number", "note", "created_by", "created_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        names = WorkflowTag.objects.order_by("name").values_list("name", flat=True).distinct()
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        if self.value():
            # A subquery, not a join, so the node count stays right.
            return queryset.filter(pk__in=WorkflowTag.objects.filter(name=self.value()).values("workflow_id"))
        return queryset


class DeletedFilter(admin.SimpleListFilter):
    title = "deleted"
    parameter_name = "deleted"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        return queryset


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    form = WorkflowForm
    list_display = ["name", "workspace", "status", "node_count", "version", "updated_at"]
    # Only workspaces that hold workflows: one personal workspace per user would swamp the sidebar.
    list_filter = ["status", ("workspace", admin.RelatedOnlyFieldListFilter), TagFilter, DeletedFilter]
    list_select_related = ["workspace"]
    search_fields = ["name", "description", "slug", "nodes__title"]
    autocomplete_fields = ["workspace"]
    readonly_fields = ["id", "version", "created_by", "created_at", "updated_at", "deleted_at"]
    fieldsets = [
        (None, {"fields": ["name", "workspace", "slug", "status", "description"]}),
        ("Definition", {"fields": ["settings", "input_schema"]}),
        ("Record", {"fields": ["id", "version", "created_by", "created_at", "updated_at", "deleted_at"]}),
    ]
    inlines = [NodeInline, EdgeInline, WorkflowVersionInline]
    actions = ["activate", "pause", "archive", "soft_delete", "restore", "duplicate", "export_json"]

    def get_actions(self, request):
        # Django's own "delete selected" would erase workflows with their history; ours is soft.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_queryset(self, request):
        # The default manager includes soft-deleted workflows on purpose: operators need to see them.
        return super().get_queryset(request).annotate(node_total=Count("nodes", distinct=True))

    def get_readonly_fields(self, request, obj=None):
        # Runs, documents and credentials belong to the workspace too; moving a workflow would split them.
        return [*self.readonly_fields, "workspace"] if obj is not None else self.readonly_fields

    def get_inline_instances(self, request, obj=None):
        # Edges join saved nodes, and versions come with saving: the add page has the nodes only.
        instances = super().get_inline_instances(request, obj)
        return instances if obj is not None else [i for i in instances if isinstance(i, NodeInline)]

    @admin.display(description="Nodes", ordering="node_total")
    def node_count(self, workflow: Workflow) -> int:
        return workflow.node_total

    def save_model(self, request, obj, form, change):
        if change:
            # Queue behind a concurrent API edit of this workflow, as the services do
            # (the admin's change view runs in one transaction).
            Workflow.objects.select_for_update().only("pk").get(pk=obj.pk)
        else:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        workflow_version_record(form.instance, actor=request.user, note="edited in the admin")

    def _bulk(self, request, queryset, action: str, done: str) -> None:
        """One all-or-nothing service call, as the API's bulk endpoint makes."""
        try:
            count = workflows_bulk(
                actor=request.user, action=action, ids=[str(pk) for pk in queryset.values_list("pk", flat=True)]
            )
        except ValidationError as error:
            self.message_user(request, _error_text(error), messages.ERROR)
            return
        self.message_user(request, f"{done} {count} workflow(s).", messages.SUCCESS)

    @admin.action(description="Activate selected workflows", permissions=["change"])
    def activate(self, request, queryset):
        self._bulk(request, queryset, "activate", "Activated")

    @admin.action(description="Pause selected workflows", permissions=["change"])
    def pause(self, request, queryset):
        self._bulk(request, queryset, "pause", "Paused")

    @admin.action(description="Archive selected workflows", permissions=["change"])
    def archive(self, request, queryset):
        self._bulk(request, queryset, "archive", "Archived")

    @admin.action(description="Delete selected workflows (soft: they can be restored)", permissions=["change"])
    def soft_delete(self, request, queryset):
        self._bulk(request, queryset, "delete", "Deleted")

    @admin.action(description="Restore selected deleted workflows", permissions=["change"])
    def restore(self, request, queryset):
        restored = 0
        for workflow in queryset.filter(deleted_at__isnull=False).select_related("workspace"):
            workflow_restore(workflow=workflow, actor=request.user)
            restored += 1
        self.message_user(request, f"Restored {restored} workflow(s).", messages.SUCCESS)

    @admin.action(description="Duplicate selected workflows", permissions=["add"])
    def duplicate(self, request, queryset):
        copies = 0
        for workflow in queryset.select_related("workspace"):
            try:
                workflow_duplicate(workflow=workflow, actor=request.user)
                copies += 1
            except (ValidationError, PermissionDenied, Http404) as error:
                self.message_user(request, f"{workflow.name}: {_error_text(error)}", messages.ERROR)
        if copies:
            self.message_user(request, f"Duplicated {copies} workflow(s).", messages.SUCCESS)

    @admin.action(description="Export selected workflows as JSON", permissions=["view"])
    def export_json(self, request, queryset):
        documents = [workflow_export(workflow=workflow) for workflow in queryset.prefetch_related("tag_set")]
        response = HttpResponse(json.dumps(documents, indent=2, ensure_ascii=False), content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="workflows.json"'
        return response


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    """Find nodes across workflows. Read-only: nodes are edited on their workflow's page, where their
    edges are checked with them and the edit records a version."""

    list_display = ["key", "title", "type", "workflow", "priority"]
    list_filter = ["type"]
    list_select_related = ["workflow"]
    search_fields = ["key", "title"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
