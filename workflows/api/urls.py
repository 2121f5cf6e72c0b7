from django.urls import path

from core.routers import OptionalSlashRouter
from workflows.api import analytics, budgets, credentials, documents, event_triggers, runs, schedules, views, webhooks

router = OptionalSlashRouter()
router.register("workflows", views.WorkflowViewSet, basename="workflow")
router.register("nodes", views.NodeViewSet, basename="node")
router.register("runs", runs.RunViewSet, basename="run")
router.register("documents", documents.DocumentViewSet, basename="document")
router.register("credentials", credentials.CredentialViewSet, basename="credential")
router.register("budgets", budgets.BudgetViewSet, basename="budget")

urlpatterns = [
    path("trigger", runs.LegacyTriggerView.as_view(), name="trigger"),
    path(
        "analytics/workflows/<uuid:workflow_id>", analytics.WorkflowAnalyticsView.as_view(), name="analytics-workflow"
    ),
    *event_triggers.urlpatterns,
    *schedules.urlpatterns,
    *webhooks.urlpatterns,
    *router.urls,
]
