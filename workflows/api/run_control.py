"""Pausing and draining: a workflow's or a workspace's runs (`runs-pause`), and the engine (staff).

A run's own pause and resume are actions of the runs (workflows.api.runs).
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Role, workspace_get
from accounts.models import Workspace
from workflows import selectors
from workflows.models import RunsPause, Workflow
from workflows.services import run_control


class RunsPauseSerializer(serializers.Serializer):
    paused = serializers.BooleanField()
    paused_at = serializers.DateTimeField(allow_null=True)
    paused_by = serializers.EmailField(allow_null=True)


class DrainSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class EngineStatusSerializer(serializers.Serializer):
    draining = serializers.BooleanField()
    since = serializers.DateTimeField(allow_null=True)
    by = serializers.CharField(allow_blank=True)
    reason = serializers.CharField(allow_blank=True)
    running_steps = serializers.IntegerField(help_text="Steps running now (while draining: still finishing).")
    held_steps = serializers.IntegerField(help_text="Steps queued or retrying in open runs.")


def _pause_shown(pause: RunsPause | None) -> dict:
    return RunsPauseSerializer(
        {
            "paused": pause is not None,
            "paused_at": pause.paused_at if pause else None,
            "paused_by": pause.paused_by.email if pause and pause.paused_by else None,
        }
    ).data


class RunsPauseView(APIView):
    """GET whether the runs of a workflow (or of a whole workspace) are paused. POST pauses them: running
    runs are paused, new ones are accepted and held queued. DELETE resumes them: paused runs go on where
    they stopped and held ones start, oldest first. Editors for a workflow, admins for a workspace."""

    scope = "workflow"  # or "workspace": as_view(scope=...)

    def _target(self, request: Request, pk) -> tuple[Workspace, Workflow | None]:
        if self.scope == "workflow":
            workflow = selectors.workflow_get(request.user, pk)
            return workflow.workspace, workflow
        return workspace_get(request.user, pk, Role.VIEWER), None

    @extend_schema(request=None, responses=RunsPauseSerializer)
    def get(self, request: Request, pk) -> Response:
        workspace, workflow = self._target(request, pk)
        return Response(_pause_shown(run_control.runs_pause_of(workspace=workspace, workflow=workflow)))

    @extend_schema(request=None, responses={201: RunsPauseSerializer})
    def post(self, request: Request, pk) -> Response:
        workspace, workflow = self._target(request, pk)
        if workflow is not None:
            pause = run_control.workflow_runs_pause(workflow=workflow, actor=request.user, request=request)
        else:
            pause = run_control.workspace_runs_pause(workspace=workspace, actor=request.user, request=request)
        return Response(_pause_shown(pause), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=RunsPauseSerializer)
    def delete(self, request: Request, pk) -> Response:
        workspace, workflow = self._target(request, pk)
        if workflow is not None:
            run_control.workflow_runs_resume(workflow=workflow, actor=request.user, request=request)
        else:
            run_control.workspace_runs_resume(workspace=workspace, actor=request.user, request=request)
        return Response(_pause_shown(None))


class EngineView(APIView):
    """Whether the engine drains (staff only), since when, by whom, and the steps running and held."""

    @extend_schema(responses=EngineStatusSerializer)
    def get(self, request: Request) -> Response:
        return Response(EngineStatusSerializer(run_control.engine_status(actor=request.user)).data)


class EngineDrainView(APIView):
    """Drain the engine (staff only): workers finish the steps they hold and start no new ones, until
    POST engine/resume. Triggers are still accepted; their runs wait. 409 if draining already."""

    @extend_schema(request=DrainSerializer, responses=EngineStatusSerializer)
    def post(self, request: Request) -> Response:
        body = DrainSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        drained = run_control.engine_drain(actor=request.user, reason=body.validated_data["reason"], request=request)
        return Response(EngineStatusSerializer(drained).data)


class EngineResumeView(APIView):
    """End the drain (staff only): every step it held is sent to the workers. 409 if not draining."""

    @extend_schema(request=None, responses=EngineStatusSerializer)
    def post(self, request: Request) -> Response:
        return Response(EngineStatusSerializer(run_control.engine_resume(actor=request.user, request=request)).data)
