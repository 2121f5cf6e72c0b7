"""Admin for event triggers: which workflow follows which, on what end. The form checks what the API
checks (same workspace, template syntax); enabling and disabling go through the trigger service,
which audits them. The form's writes are audited as the service's are: event_trigger.created,
.updated or .deleted."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from audit.admin_writes import AuditedAdminMixin
from core.request_text import StorableJSONFormField
from workflows.models import EventTrigger
from workflows.services.event_triggers import event_trigger_update, input_template_errors

OTHER_WORKSPACE = "The source workflow must be in the same workspace as the workflow it starts."


class EventTriggerForm(forms.ModelForm):
    class Meta:
        model = EventTrigger
        fields = ["source_workflow", "on", "workflow", "input_template", "enabled"]
        field_classes = {"input_template": StorableJSONFormField}
        widgets = {"input_template": forms.Textarea(attrs={"rows": 4, "cols": 80})}

    def clean(self):
        cleaned = super().clean()
        source, target = cleaned.get("source_workflow"), cleaned.get("workflow")
        if source is not None and target is not None and source.workspace_id != target.workspace_id:
            self.add_error("source_workflow", OTHER_WORKSPACE)
        for path, field_messages in input_template_errors(cleaned.get("input_template")).items():
            rest = path.removeprefix("input_template").lstrip(".")
            for message in field_messages:
                self.add_error("input_template", f"{rest}: {message}" if rest else message)
        return cleaned


@admin.register(EventTrigger)
class EventTriggerAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = EventTriggerForm
    list_display = ["source_workflow", "on", "workflow", "enabled", "created_at"]
    list_filter = [
        "on",
        "enabled",
        ("workflow", admin.RelatedOnlyFieldListFilter),
        ("source_workflow", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["source_workflow", "workflow"]
    search_fields = ["source_workflow__name", "workflow__name"]
    autocomplete_fields = ["source_workflow", "workflow"]
    readonly_fields = ["id", "created_by", "created_at"]
    actions = ["enable", "disable"]
    audit_prefix = audit_target_type = "event_trigger"
    audit_fields = ["source_workflow", "on", "workflow", "input_template", "enabled"]

    def audit_workspace(self, obj: EventTrigger):
        return obj.workflow.workspace

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        count = 0
        for trigger in queryset.select_related("workflow__workspace"):
            try:
                event_trigger_update(trigger=trigger, actor=request.user, data={"enabled": enabled}, request=request)
            except (PermissionDenied, Http404, ValidationError) as error:
                self.message_user(request, f"Trigger {trigger.pk}: {error}", messages.ERROR)
            else:
                count += 1
        if count:
            done = "Enabled" if enabled else "Disabled"
            self.message_user(request, f"{done} {count} event trigger(s).", messages.SUCCESS)

    @admin.action(description="Enable selected event triggers", permissions=["change"])
    def enable(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected event triggers", permissions=["change"])
    def disable(self, request, queryset):
        self._set_enabled(request, queryset, False)
