from django.urls import path

from core.routers import OptionalSlashRouter
from workflows.api import (
    analytics,
    budgets,
    credentials,
    documents,
    event_triggers,
    node_types,
    run_control,
    runs,
    schedules,
    views,
    webhooks,
)

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
    path(
        "workflows/<uuid:pk>/runs-pause",
        run_control.RunsPauseView.as_view(scope="workflow"),
        name="workflow-runs-pause",
    ),
    path(
        "workspaces/<uuid:pk>/runs-pause",
        run_control.RunsPauseView.as_view(scope="workspace"),
        name="workspace-runs-pause",
    ),
    path("node-types", node_types.NodeTypesView.as_view(), name="node-types"),
    path("engine", run_control.EngineView.as_view(), name="engine"),
    path("engine/drain", run_control.EngineDrainView.as_view(), name="engine-drain"),
    path("engine/resume", run_control.EngineResumeView.as_view(), name="engine-resume"),
    *event_triggers.urlpatterns,
    *schedules.urlpatterns,
    *webhooks.urlpatterns,
    *router.urls,
]
