from django.urls import re_path

from analytics.api import export, insights, reports, views
from core.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("analytics/reports", reports.ReportViewSet, basename="analytics-report")

urlpatterns = [
    re_path(r"^analytics/overview/?$", views.OverviewView.as_view(), name="analytics-overview"),
    re_path(r"^analytics/timeseries/?$", views.TimeseriesView.as_view(), name="analytics-timeseries"),
    re_path(r"^analytics/nodes/?$", views.NodesView.as_view(), name="analytics-nodes"),
    re_path(r"^analytics/breakdown/?$", views.BreakdownView.as_view(), name="analytics-breakdown"),
    re_path(r"^analytics/insights/?$", insights.InsightListView.as_view(), name="analytics-insights"),
    re_path(
        r"^analytics/insights/(?P<id>[0-9a-fA-F-]{36})/dismiss/?$",
        insights.InsightDismissView.as_view(),
        name="analytics-insight-dismiss",
    ),
    re_path(r"^analytics/export/?$", export.ExportView.as_view(), name="analytics-export"),
    *router.urls,
]
