"""Admin for budgets. Adding, changing and deleting go through the budget services, so an operator's
change is validated and audited (`budget.created`, `.updated`, `.deleted`) as an API change is. What the
periods spent is history: shown inline, read-only."""

from django import forms
from django.contrib import admin

from audit.admin_writes import ServiceDeleteAdminMixin
from workflows.admin.read_only import ReadOnlyTabularInline
from workflows.models import Budget, BudgetUsage
from workflows.services.budgets import WORKFLOW_INVALID, budget_create, budget_delete, budget_update

RECENT_PERIODS = 50
EDITABLE_FIELDS = ["name", "metric", "period", "limit", "threshold", "workflow", "active"]


class BudgetForm(forms.ModelForm):
    class Meta:
        model = Budget
        fields = ["workspace", *EDITABLE_FIELDS]

    def clean(self):
        cleaned = super().clean()
        workspace = cleaned.get("workspace") or (self.instance.workspace if self.instance.pk else None)
        workflow = cleaned.get("workflow")
        if workflow is not None and workspace is not None and workflow.workspace_id != workspace.pk:
            self.add_error("workflow", WORKFLOW_INVALID)
        return cleaned


class BudgetUsageInline(ReadOnlyTabularInline):
    model = BudgetUsage
    fields = ["period_key", "period_start", "period_end", "spent", "calls", "refused", "threshold_reached_at"]
    readonly_fields = fields
    verbose_name_plural = f"Latest {RECENT_PERIODS} periods"


@admin.register(Budget)
class BudgetAdmin(ServiceDeleteAdminMixin, admin.ModelAdmin):
    form = BudgetForm
    list_display = ["name", "workspace", "workflow", "metric", "period", "limit", "threshold", "active"]
    list_filter = ["active", "metric", "period"]
    list_select_related = ["workspace", "workflow"]
    search_fields = ["name", "workspace__name", "workflow__name"]
    autocomplete_fields = ["workspace", "workflow"]
    inlines = [BudgetUsageInline]
    readonly_fields = ["id", "created_by", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["workspace", *EDITABLE_FIELDS]}),
        ("Record", {"fields": readonly_fields}),
    ]
    delete_select_related = ["workspace"]

    def get_readonly_fields(self, request, obj=None):
        # What a budget counted belongs to its workspace; it does not move to another one.
        return [*self.readonly_fields, "workspace"] if obj is not None else self.readonly_fields

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, BudgetUsageInline) and obj is not None:
            # An inline's queryset is filtered by its parent after get_queryset, so it cannot be sliced there.
            latest = BudgetUsage.objects.filter(budget=obj).order_by("-updated_at").values("pk")[:RECENT_PERIODS]
            kwargs["queryset"] = BudgetUsage.objects.filter(pk__in=latest).order_by("-updated_at")
        return kwargs

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS if name in form.cleaned_data}
        # The services take the API's body: ids and numbers as text.
        if data.get("workflow") is not None:
            data["workflow"] = str(data["workflow"].pk)
        for name in ("limit", "threshold"):
            if data.get(name) is not None:
                data[name] = str(data[name])
        if change:
            data = {name: value for name, value in data.items() if name in form.changed_data}
            saved = budget_update(budget=obj, actor=request.user, data=data, request=request)
        else:
            saved = budget_create(actor=request.user, workspace=obj.workspace, data=data, request=request)
        obj.pk, obj.created_by, obj.created_at = saved.pk, saved.created_by, saved.created_at

    def delete_through_service(self, request, obj):
        budget_delete(budget=obj, actor=request.user, request=request)
