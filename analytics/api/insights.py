"""Insights (analytics.services.insights), confined to the caller's workspaces.

    GET  /api/v3/analytics/insights?workspace=&workflow=&status=open|dismissed|resolved|all&severity=
    POST /api/v3/analytics/insights/{id}/dismiss        editors and above

Newest first, paginated as every list (`results`). An insight of a workspace the caller is not a member
of does not exist (404); a viewer may read insights but not dismiss them (403).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from analytics.api.views import id_param
from analytics.models import Insight
from analytics.services.insights import insight_dismiss


class InsightSerializer(serializers.ModelSerializer):
    workspace = serializers.UUIDField(source="workspace_id", read_only=True)
    workflow = serializers.UUIDField(source="workflow_id", read_only=True, allow_null=True)
    numbers = serializers.DictField(read_only=True, help_text="The figures behind it and the periods compared.")

    class Meta:
        model = Insight
        fields = [
            "id",
            "workspace",
            "workflow",
            "kind",
            "subject",
            "severity",
            "status",
            "title",
            "numbers",
            "period_start",
            "period_end",
            "link",
            "opened_at",
            "updated_at",
            "resolved_at",
            "dismissed_at",
        ]
        read_only_fields = fields


class InsightListView(generics.ListAPIView):
    """The insights of the caller's workspaces, newest first: open ones unless `status` says otherwise."""

    serializer_class = InsightSerializer
    # The selector filters (and orders, newest first): no search or ordering parameters.
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Insight.objects.none()
        params = self.request.query_params
        return selectors.insights_for_user(
            self.request.user,
            workspace=id_param(self.request, "workspace"),
            workflow=id_param(self.request, "workflow"),
            status=params.get("status") or "open",
            severity=params.get("severity") or None,
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("workspace", OpenApiTypes.UUID, description="One of the caller's workspaces."),
            OpenApiParameter("workflow", OpenApiTypes.UUID, description="One workflow."),
            OpenApiParameter("status", str, enum=list(selectors.INSIGHT_STATUSES), description="Default open."),
            OpenApiParameter("severity", str, enum=Insight.Severity.values),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class InsightDismissView(APIView):
    """Dismiss an insight: it stays dismissed while its condition holds (nobody is notified of it again),
    and is resolved when the condition ends. Dismissing it again changes nothing."""

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: InsightSerializer},
    )
    def post(self, request, id):
        insight = insight_dismiss(insight=selectors.insight_get(id), actor=request.user, request=request)
        return Response(InsightSerializer(insight).data)
