"""The operators' view of workflows and their nodes. Actions and versions go through the services,
as API edits do."""

import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from audit.admin_writes import AuditedAdminMixin, ServiceDeleteAdminMixin, field_state
from audit.services import diff
from core.problems import Conflict
from workflows.admin.read_only import ReadOnlyAdminMixin
from workflows.admin.workflow_forms import (
    AUDITED_WORKFLOW_FIELDS,
    RUN_NOW_DELETED,
    RUN_NOW_ONE_AT_A_TIME,
    RUN_NOW_TEMPLATE,
    EdgeInline,
    NodeInline,
    RunNowForm,
    WorkflowForm,
    WorkflowVersionInline,
    error_text,
)
from workflows.models import Node, Run, Workflow, WorkflowTag
from workflows.selectors import workflow_specs
from workflows.services.definitions import workflow_version_record
from workflows.services.nodes import NODE_AUDIT_IGNORED
from workflows.services.runs import run_trigger
from workflows.services.transfer import workflow_duplicate, workflow_export
from workflows.services.workflows import workflow_delete, workflow_restore
from workflows.services.workflows_bulk import workflows_bulk


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
            self.message_user(request, error_text(error), messages.ERROR)
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
                self.message_user(request, f"{workflow.name}: {error_text(error)}", messages.ERROR)
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
