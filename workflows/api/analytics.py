"""GET /api/v3/analytics/workflows/{id}?range=…: one workflow's overview, nodes (slowest first) and top
errors, from analytics. Served here rather than by analytics.api because a workflow the caller cannot
see must be a 404, and only this app knows its workflows (analytics name them by id only)."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from analytics.api.views import RANGE_PARAMETERS, WorkflowFiguresSerializer, workflow_figures
from workflows.selectors import workflow_get


class WorkflowAnalyticsView(APIView):
    """One workflow's figures over a range (a deleted workflow's too: its history stays)."""

    @extend_schema(parameters=RANGE_PARAMETERS[:3], responses={200: WorkflowFiguresSerializer})
    def get(self, request, workflow_id):
        workflow = workflow_get(request.user, workflow_id, include_deleted=True)
        span = selectors.range_of(request.query_params)
        scope = selectors.Scope([workflow.workspace_id], workflow=workflow.pk)
        return Response(WorkflowFiguresSerializer(workflow_figures(span, scope)).data)
