"""Analytics in the admin, for operators: the event stream and saved reports (browsing only: reports
are changed through the API's services), and insights with a dismiss action through their service
(role-checked and audited like the API's)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404

from analytics.models import Event, Insight, Report
from analytics.services.insights import insight_dismiss
from audit.admin_writes import ReadOnlyAdminMixin


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["ts", "type", "subject", "workspace_id", "workflow_id", "rolled_up"]
    list_filter = ["type", "rolled_up"]
    search_fields = ["=subject", "=workspace_id", "=workflow_id"]
    date_hierarchy = "ts"
    show_full_result_count = False


@admin.register(Insight)
class InsightAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["opened_at", "severity", "kind", "title", "workspace", "status", "updated_at"]
    list_filter = ["status", "severity", "kind"]
    search_fields = ["title", "subject", "=workflow_id"]
    list_select_related = ["workspace"]
    date_hierarchy = "opened_at"
    actions = ["dismiss"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_operate_permission(self, request) -> bool:
        # The admin never edits an insight's fields, so the change permission means "may dismiss".
        return request.user.has_perm("analytics.change_insight")

    @admin.action(description="Dismiss selected insights", permissions=["operate"])
    def dismiss(self, request, queryset):
        count = 0
        for insight in queryset.select_related("workspace"):
            try:
                dismissed = insight_dismiss(insight=insight, actor=request.user, request=request)
            except (PermissionDenied, Http404) as error:
                self.message_user(request, f"Insight {insight.pk}: {error}", messages.ERROR)
            else:
                count += dismissed.status == Insight.Status.DISMISSED
        if count:
            self.message_user(request, f"Dismissed {count} insight(s).", messages.SUCCESS)


@admin.register(Report)
class ReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "workspace", "range", "bucket", "created_by", "updated_at"]
    search_fields = ["name"]
    list_select_related = ["workspace", "created_by"]
