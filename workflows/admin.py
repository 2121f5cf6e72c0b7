"""The operators' view of workflows and runs. Forms validate through the node registry and the graph
rules; actions and versions go through the services, as API edits do. Runs are read-only history:
operators act on them only through the run services (cancel, retry)."""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from audit.admin_writes import AuditedAdminMixin, ServiceDeleteAdminMixin, field_state
from audit.services import REDACTED, audit_record, diff
from config.problems import Conflict
from config.request_text import StorableJSONFormField
from workflows import definitions
from workflows.admin_readonly import ReadOnlyAdminMixin, ReadOnlyTabularInline
from workflows.credentials import KIND_NEEDS_VALUE as CREDENTIAL_KIND_NEEDS_VALUE
from workflows.credentials import NAME_TAKEN as CREDENTIAL_NAME_TAKEN
from workflows.credentials import credential_delete, credential_fields
from workflows.credentials import encrypt as encrypt_credential
from workflows.credentials import value_errors as credential_value_errors
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.graph import find_cycle
from workflows.models import Credential, Edge, Node, Run, RunEvent, StepRun, Workflow, WorkflowTag, WorkflowVersion
from workflows.selectors import workflow_specs
from workflows.services.definitions import (
    NODE_AUDIT_IGNORED,
    SLUG_TAKEN,
    workflow_delete,
    workflow_duplicate,
    workflow_export,
    workflow_references_check,
    workflow_restore,
    workflow_version_record,
    workflows_bulk,
)
from workflows.services.runs import run_cancel, run_retry, run_trigger

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
        field_classes = {"settings": StorableJSONFormField, "input_schema": StorableJSONFormField}

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
            self.add_error(None, _error_text(error))
            return
        for path, field_messages in error.message_dict.items():
            rest = path.removeprefix("input").removeprefix(".")
            for message in field_messages:
                self.add_error("input", f"{rest}: {message}" if rest else message)


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
class WorkflowAdmin(ServiceDeleteAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
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
    actions = ["run_now", "activate", "pause", "archive", "soft_delete", "restore", "duplicate", "export_json"]
    audit_prefix = "workflow"
    delete_select_related = ["workspace"]

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
        # The mixin locks a changed workflow's row first: a concurrent API edit queues behind this one,
        # as behind a service (the admin's change view runs in one transaction).
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def related_saved(self, request, obj, change):
        workflow_version_record(obj, actor=request.user, note="edited in the admin")

    def audit_workspace(self, obj: Workflow):
        return obj.workspace

    def audit_state(self, obj: Workflow) -> dict:
        keys = [spec["key"] for spec in workflow_specs(obj)]
        return {**field_state(obj, AUDITED_WORKFLOW_FIELDS), "nodes": keys, "version": obj.version}

    def audit_related_state(self, obj: Workflow) -> dict:
        """Each node as node_update compares it (with its dependencies, which the edge inline edits), by id."""
        ids = dict(obj.nodes.values_list("key", "pk"))
        return {
            str(ids[spec["key"]]): {name: value for name, value in spec.items() if name not in NODE_AUDIT_IGNORED}
            for spec in workflow_specs(obj)
        }

    def audit_related_records(self, obj: Workflow, before, after) -> list[dict]:
        if before is None:
            return []  # a new workflow's nodes are in its workflow.created
        records = []
        for node_id in dict.fromkeys([*before, *after]):
            old, new = before.get(node_id), after.get(node_id)
            if old is None:
                action, changes = "node.created", {**diff({}, new), "workflow": [None, str(obj.pk)]}
            elif new is None:
                gone = {name: old[name] for name in ("key", "type", "title")}
                action, changes = "node.deleted", {**diff(gone, {}), "workflow": [str(obj.pk), None]}
            else:
                action, changes = "node.updated", diff(old, new)
            if changes:
                records.append(
                    {
                        "action": action,
                        "workspace": obj.workspace,
                        "target_type": "node",
                        "target_id": node_id,
                        "changes": changes,
                    }
                )
        return records

    def get_deleted_objects(self, objs, request):
        # Deleting a workflow here is the API's soft delete: nothing goes with it, and it can be restored.
        return [str(obj) for obj in objs], {self.opts.verbose_name_plural: len(objs)}, set(), []

    def delete_through_service(self, request, obj):
        workflow_delete(workflow=obj, actor=request.user, request=request)

    def _bulk(self, request, queryset, action: str, done: str) -> None:
        """One all-or-nothing service call, as the API's bulk endpoint makes."""
        try:
            count = workflows_bulk(
                actor=request.user,
                action=action,
                ids=[str(pk) for pk in queryset.values_list("pk", flat=True)],
                request=request,
            )
        except ValidationError as error:
            self.message_user(request, _error_text(error), messages.ERROR)
            return
        self.message_user(request, f"{done} {count} workflow(s).", messages.SUCCESS)

    def has_run_permission(self, request) -> bool:
        # Starting a run adds a Run; the run service still checks the workspace role.
        return request.user.has_perm("workflows.add_run")

    @admin.action(description="Run now…", permissions=["run"])
    def run_now(self, request, queryset):
        """An intermediate page asks for the input; its form posts back to this action with `apply`."""
        workflows = list(queryset.select_related("workspace")[:2])
        if len(workflows) != 1:
            self.message_user(request, RUN_NOW_ONE_AT_A_TIME, messages.ERROR)
            return None
        workflow = workflows[0]
        if workflow.is_deleted:
            self.message_user(request, RUN_NOW_DELETED.format(name=workflow.name), messages.ERROR)
            return None
        form = RunNowForm(request.POST) if "apply" in request.POST else RunNowForm()
        if form.is_bound and form.is_valid():
            run_input = {} if form.cleaned_data["input"] is None else form.cleaned_data["input"]
            try:
                run, _ = run_trigger(
                    workflow=workflow, input=run_input, trigger=Run.Trigger.MANUAL, actor=request.user, request=request
                )
            except (ValidationError, Conflict, PermissionDenied, Http404) as error:
                form.add_service_error(error)
            else:
                self.message_user(request, f"Started run {run.pk} of {workflow.name}.", messages.SUCCESS)
                url = reverse("admin:workflows_run_change", args=[run.pk], current_app=self.admin_site.name)
                return HttpResponseRedirect(url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Run {workflow.name}",
            "subtitle": None,
            "opts": self.model._meta,
            "workflow": workflow,
            "form": form,
            "input_schema": json.dumps(workflow.input_schema, indent=2, ensure_ascii=False)
            if workflow.input_schema
            else "",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, RUN_NOW_TEMPLATE, context)

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
            workflow_restore(workflow=workflow, actor=request.user, request=request)
            restored += 1
        self.message_user(request, f"Restored {restored} workflow(s).", messages.SUCCESS)

    @admin.action(description="Duplicate selected workflows", permissions=["add"])
    def duplicate(self, request, queryset):
        copies = 0
        for workflow in queryset.select_related("workspace"):
            try:
                workflow_duplicate(workflow=workflow, actor=request.user, request=request)
                copies += 1
            except (ValidationError, PermissionDenied, Http404) as error:
                self.message_user(request, f"{workflow.name}: {_error_text(error)}", messages.ERROR)
        if copies:
            self.message_user(request, f"Duplicated {copies} workflow(s).", messages.SUCCESS)

    @admin.action(description="Export selected workflows as JSON", permissions=["view"])
    def export_json(self, request, queryset):
        documents = [
            workflow_export(workflow=workflow, actor=request.user, request=request)
            for workflow in queryset.select_related("workspace").prefetch_related("tag_set")
        ]
        response = HttpResponse(json.dumps(documents, indent=2, ensure_ascii=False), content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="workflows.json"'
        return response


@admin.register(Node)
class NodeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Find nodes across workflows. Read-only: nodes are edited on their workflow's page, where their
    edges are checked with them and the edit records a version."""

    list_display = ["key", "title", "type", "workflow", "priority"]
    list_filter = ["type"]
    list_select_related = ["workflow"]
    search_fields = ["key", "title"]


RECENT_EVENTS = 20


def _seconds(start, end) -> str:
    if start is None:
        return "—"
    seconds = ((end or timezone.now()) - start).total_seconds()
    text = f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
    return text if end else f"{text} so far"


def _pretty_json(value) -> str:
    if value is None:
        return "—"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


class StepRunInline(ReadOnlyTabularInline):
    model = StepRun
    ordering = ["queued_at", "node_key"]
    fields = ["node_key", "node_type", "status", "attempt", "started_at", "finished_at", "duration", "error_summary"]
    readonly_fields = fields
    show_change_link = False

    @admin.display(description="Duration")
    def duration(self, step: StepRun) -> str:
        if step.duration_ms is not None:
            return f"{step.duration_ms:.0f} ms"
        return _seconds(step.started_at, step.finished_at) if step.started_at else "—"

    @admin.display(description="Error")
    def error_summary(self, step: StepRun) -> str:
        error = step.error if isinstance(step.error, dict) else {}
        message = str(error.get("message", ""))
        if not message:
            return "—"
        summary = f"{error['type']}: {message}" if error.get("type") else message
        return summary if len(summary) <= 200 else f"{summary[:199]}…"


@admin.register(Run)
class RunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Run history, read-only: the engine alone writes runs; operators cancel and retry through actions."""

    list_display = ["short_id", "workflow", "status", "trigger", "created_at", "duration"]
    list_filter = ["status", ("workflow", admin.RelatedOnlyFieldListFilter), "trigger"]
    # The workflow only: a version holds a whole definition snapshot, which the list has no use for.
    list_select_related = ["workflow"]
    # `^id`: an id prefix, such as the short id the list shows.
    search_fields = ["^id", "workflow__name"]
    # Counting a large run table on every page costs more than the exact total is worth.
    show_full_result_count = False
    actions = ["cancel", "retry"]
    inlines = [StepRunInline]
    fieldsets = [
        (None, {"fields": ["id", "workflow", "version_number", "status", "trigger", "created_by", "parent_run"]}),
        ("Timing", {"fields": ["created_at", "started_at", "finished_at", "deadline_at", "duration"]}),
        ("Data", {"fields": ["input_json", "output_json", "error_json", "idempotency_key"]}),
        ("Events", {"fields": ["recent_events"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_operate_permission(self, request) -> bool:
        # The admin never edits a run's fields, so Django's change permission means "may act on runs".
        return request.user.has_perm("workflows.change_run")

    def _each(self, request, queryset, service, done: str) -> None:
        count = 0
        for run in queryset.select_related("workspace"):
            try:
                service(run=run, actor=request.user, request=request)
            except (Conflict, PermissionDenied, Http404) as error:
                self.message_user(request, f"Run {run.pk}: {error}", messages.ERROR)
            else:
                count += 1
        if count:
            self.message_user(request, f"{done} {count} run(s).", messages.SUCCESS)

    @admin.action(description="Cancel selected runs", permissions=["operate"])
    def cancel(self, request, queryset):
        self._each(request, queryset, run_cancel, "Cancelled")

    @admin.action(description="Retry selected runs (failed or cancelled ones)", permissions=["operate"])
    def retry(self, request, queryset):
        self._each(request, queryset, run_retry, "Re-queued")

    @admin.display(description="Run", ordering="id")
    def short_id(self, run: Run) -> str:
        return str(run.pk)[:8]

    @admin.display(description="Duration")
    def duration(self, run: Run) -> str:
        return _seconds(run.started_at, run.finished_at)

    @admin.display(description="Version")
    def version_number(self, run: Run) -> int:
        return run.version.number

    @admin.display(description="Parent run")
    def parent_run(self, run: Run) -> str:
        if run.parent_step is None:
            return "—"
        url = reverse("admin:workflows_run_change", args=[run.parent_step.run_id], current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a> (step {})', url, run.parent_step.run_id, run.parent_step.node_key)

    @admin.display(description="Input")
    def input_json(self, run: Run) -> str:
        return _pretty_json(run.input)

    @admin.display(description="Output")
    def output_json(self, run: Run) -> str:
        return _pretty_json(run.output)

    @admin.display(description="Error")
    def error_json(self, run: Run) -> str:
        return _pretty_json(run.error)

    @admin.display(description=f"Last {RECENT_EVENTS} events")
    def recent_events(self, run: Run) -> str:
        events = list(RunEvent.objects.filter(run=run).order_by("-seq")[:RECENT_EVENTS])
        if not events:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (
                    event.seq,
                    timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                    event.type,
                    event.step or "",
                    _event_data(event.data),
                )
                for event in reversed(events)
            ),
        )
        return format_html(
            "<table><thead><tr><th>#</th><th>At</th><th>Event</th><th>Step</th><th>Data</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )


def _event_data(data) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= 300 else f"{text[:299]}…"


class WriteOnlyTextarea(forms.Textarea):
    """Never renders a value: not the stored one, nor one typed into a form sent back with errors."""

    def format_value(self, value):
        return None


class CredentialForm(forms.ModelForm):
    """The value is write-only: it is never shown, and left empty it keeps the stored one."""

    value = forms.JSONField(
        required=False,
        widget=WriteOnlyTextarea(attrs={"rows": 3, "cols": 60, "autocomplete": "off"}),
        help_text='A JSON object, e.g. {"token": "…"} for http_bearer. It is never shown again; '
        "leave blank to keep the current value.",
    )

    class Meta:
        model = Credential
        fields = ["workspace", "name", "kind"]

    def clean(self):
        cleaned = super().clean()
        value, kind = cleaned.get("value"), cleaned.get("kind")
        if value in (None, "") and self.instance._state.adding:
            self.add_error("value", "A new credential needs a value.")
        elif value in (None, "") and kind and "kind" in self.changed_data:
            self.add_error("value", CREDENTIAL_KIND_NEEDS_VALUE)
        elif value not in (None, "") and kind:
            for problem in credential_value_errors(kind, value):
                self.add_error("value", problem)
        name = cleaned.get("name")
        if not self.instance._state.adding and name and "name" in self.changed_data:
            # The workspace is read-only here, so the form's own unique check skips (workspace, name).
            taken = Credential.objects.filter(workspace_id=self.instance.workspace_id, name=name)
            if taken.exclude(pk=self.instance.pk).exists():
                self.add_error("name", CREDENTIAL_NAME_TAKEN)
        return cleaned


@admin.register(Credential)
class CredentialAdmin(ServiceDeleteAdminMixin, admin.ModelAdmin):
    form = CredentialForm
    list_display = ["name", "kind", "workspace", "stored_keys", "created_by", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    autocomplete_fields = ["workspace"]
    delete_select_related = ["workspace"]

    def get_fields(self, request, obj=None):
        return ["workspace", "name", "kind", "stored_keys", "value"] if obj else ["workspace", "name", "kind", "value"]

    def get_readonly_fields(self, request, obj=None):
        # Node configs name credentials within their workspace: moving one would break them silently.
        return ["workspace", "stored_keys"] if obj is not None else []

    @admin.display(description="value keys")
    def stored_keys(self, obj: Credential) -> str:
        keys = credential_fields(obj)
        return "(cannot be decrypted with CREDENTIALS_KEY)" if keys is None else ", ".join(keys)

    def save_model(self, request, obj, form, change):
        value = form.cleaned_data.get("value")
        if value not in (None, ""):  # validated by the form; empty keeps the stored value
            obj.encrypted_value = encrypt_credential(value)
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        fields = [name for name in ("name", "kind") if name in form.changed_data]
        changes = diff({name: form.initial.get(name) for name in fields}, {name: getattr(obj, name) for name in fields})
        if value not in (None, ""):  # the value itself never reaches the audit trail
            changes["value"] = [REDACTED if change else None, REDACTED]
        if changes:
            audit_record(
                action="credential.updated" if change else "credential.created",
                actor=request.user,
                workspace=obj.workspace,
                target=obj,
                changes=changes,
                request=request,
            )

    # Deleting goes through the API's service. Forced: an operator may delete a credential that nodes
    # still name (the API asks for ?force=true); the event then says it was forced.
    def delete_through_service(self, request, obj):
        credential_delete(credential=obj, actor=request.user, force=True, request=request)


# Trigger admins live in their own modules; importing them registers them.
from workflows import admin_documents, admin_events, admin_schedules, admin_webhooks  # noqa: E402,F401
