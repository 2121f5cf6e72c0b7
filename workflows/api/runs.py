"""Runs: start them, watch them, act on them."""

import json

import django_filters
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.access import Role
from core.filters import DateTimeFilter
from core.pagination import whole_number
from workflows import selectors
from workflows.api import serializers
from workflows.api.displays import run_display
from workflows.events import envelope
from workflows.models import Run, Workflow
from workflows.services import run_control
from workflows.services import runs as services
from workflows.sse import run_event_snapshot, run_event_stream

IDEMPOTENCY_HEADER = "Idempotency-Key"


class EventStreamRenderer(BaseRenderer):
    """Lets `Accept: text/event-stream` through content negotiation; the stream itself is a Django
    StreamingHttpResponse. Only error bodies are rendered here (as JSON)."""

    media_type = "text/event-stream"
    format = "event-stream"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return json.dumps(data).encode()


EVENT_RENDERERS = [*api_settings.DEFAULT_RENDERER_CLASSES, EventStreamRenderer]
# One event of the stream (OpenAPI before 3.2 documents a text/event-stream by one event): its fields,
# as workflows.sse writes them. A `retry:` block and `: keep-alive` comments are no events.
SSE_EVENT = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The event's seq (Last-Event-ID to resume)."},
        "event": {"type": "string", "description": "The event's type (as data.type)."},
        "data": {
            "type": "string",
            "description": "The event, as the JSON list gives it.",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/RunEvent"},
        },
    },
}


def trigger_response(request: Request, workflow: Workflow, run_input, *, extra: dict | None = None) -> Response:
    """Start a run (or find the one an Idempotency-Key already started): 202 new, 200 repeated."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()[:200] or None
    run, created = services.run_trigger(
        workflow=workflow,
        input={} if run_input is None else run_input,
        trigger=Run.Trigger.API if request.auth is not None else Run.Trigger.MANUAL,
        actor=request.user,
        idempotency_key=key,
        request=request,
    )
    body = {**(extra(run) if extra else {}), **serializers.RunSerializer(run).data}
    return Response(body, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


class LegacyTriggerView(APIView):
    """`POST /api/v3/trigger {workflow_id, payload}`, as older clients call it."""

    starts_runs = True

    @extend_schema(request=serializers.LegacyTriggerSerializer, responses={202: serializers.RunSerializer})
    def post(self, request):
        data = serializers.LegacyTriggerSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workflow = selectors.workflow_get(request.user, data.validated_data["workflow_id"])
        return trigger_response(
            request,
            workflow,
            data.validated_data.get("payload"),
            extra=lambda run: {"run_id": str(run.pk)},
        )


class RunFilter(django_filters.FilterSet):
    workspace = django_filters.UUIDFilter(field_name="workspace_id")
    workflow = django_filters.UUIDFilter(field_name="workflow_id")
    status = django_filters.ChoiceFilter(choices=Run.Status.choices)
    trigger = django_filters.ChoiceFilter(choices=Run.Trigger.choices)
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Run
        fields = ["workspace", "workflow", "status", "trigger", "created_after", "created_before"]


class RunViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = serializers.RunSerializer
    filterset_class = RunFilter
    ordering_fields = ["created_at", "finished_at"]
    ordering = ["-created_at"]
    search_fields: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Run.objects.none()
        return selectors.runs_for_user(self.request.user)

    def _get(self) -> Run:
        return selectors.run_get(self.request.user, self.kwargs["pk"])

    @extend_schema(responses=serializers.RunDetailSerializer)
    def retrieve(self, request, pk=None):
        return Response(run_display(request.user, pk))

    @extend_schema(responses=serializers.StepRunSerializer(many=True))
    # One row per node of the run's version (bounded by max_nodes): the list comes whole.
    @action(detail=True, methods=["get"], pagination_class=None)
    def steps(self, request, pk=None):
        steps = self._get().steps.order_by("queued_at", "node_key")
        return Response(serializers.StepRunSerializer(steps, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "after_seq",
                {"type": "integer", "minimum": 0},
                description="Only events after this seq.",
                allow_blank=False,
            ),
            OpenApiParameter(
                "Last-Event-ID",
                {"type": "string", "pattern": "^[0-9]*$"},
                OpenApiParameter.HEADER,
                description="SSE: the last seq received (instead of after_seq; empty: not given).",
            ),
        ],
        description="The run's event log as JSON; with `Accept: text/event-stream`, a live server-sent event "
        "stream (SSE `id` = seq) that ends when the run has finished.",
        responses={
            (200, "application/json"): OpenApiResponse(
                serializers.RunEventSerializer(many=True), description="The events, oldest first, at most 1000."
            ),
            (200, "text/event-stream"): OpenApiResponse(SSE_EVENT, description="Server-sent events (one's schema)."),
        },
    )
    # At most 1000 events after `after_seq`: a client pages by seq, not by page number.
    @action(detail=True, methods=["get"], renderer_classes=EVENT_RENDERERS, pagination_class=None)
    def events(self, request, pk=None):
        run = self._get()
        last_event_id = request.headers.get("Last-Event-ID")  # an SSE id: digits
        if last_event_id:
            after = int(last_event_id) if last_event_id.isascii() and last_event_id.isdigit() else None
        else:
            after = whole_number(request.query_params.get("after_seq", "0"))
        if after is None or after < 0:
            raise ValidationError({"Last-Event-ID" if last_event_id else "after_seq": ["A whole number, 0 or more."]})
        if request.accepted_renderer.format == EventStreamRenderer.format:
            # Live under ASGI only: a WSGI server sends what the log holds now (workflows.sse).
            live = isinstance(request._request, ASGIRequest)
            stream = run_event_stream(run, after) if live else run_event_snapshot(run, after)
            response = StreamingHttpResponse(stream, content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
            return response
        events = run.events.filter(seq__gt=after).order_by("seq")[:1000]
        return Response([envelope(event, run) for event in events])

    @extend_schema(request=None, responses={202: serializers.RunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = services.run_cancel(run=self._get(), actor=request.user, request=request)
        return Response(serializers.RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: serializers.RunSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        run = services.run_retry(run=self._get(), actor=request.user, request=request)
        return Response(serializers.RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None,
        parameters=[
            OpenApiParameter(
                "now",
                bool,
                description="Stop the running steps that are safe to run again (they run again on resume); "
                "the others finish. Without it, every running step finishes.",
            )
        ],
        responses={202: serializers.RunSerializer},
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        query = serializers.PauseQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        run = run_control.run_pause(
            run=self._get(), actor=request.user, stop=query.validated_data["now"], request=request
        )
        return Response(serializers.RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: serializers.RunSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        run = run_control.run_resume(run=self._get(), actor=request.user, request=request)
        return Response(serializers.RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=serializers.ApprovalSerializer, responses=serializers.StepRunSerializer)
    @action(detail=True, methods=["post"], url_path=r"steps/(?P<node_key>[a-z0-9_]+)/approve")
    def approve(self, request, pk=None, node_key=None):
        run = selectors.run_get(request.user, pk, minimum=Role.EDITOR)  # who, before what
        data = serializers.ApprovalSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not run.steps.filter(node_key=node_key).exists():
            raise Http404(f"The run has no step {node_key!r}.")
        step = services.step_approve(
            run=run, node_key=node_key, actor=request.user, **data.validated_data, request=request
        )
        return Response(serializers.StepRunSerializer(step).data)

    @extend_schema(
        request=serializers.RequestChangesSerializer,
        responses={202: serializers.RunSerializer},
        description="Send the documents a waiting approval reviews back: they are written again, the model "
        "seeing its draft and the comment after the prompt; the steps between them and the approval run again, "
        "and the approval waits anew.",
    )
    @action(detail=True, methods=["post"], url_path=r"steps/(?P<node_key>[a-z0-9_]+)/request-changes")
    def request_changes(self, request, pk=None, node_key=None):
        run = selectors.run_get(request.user, pk, minimum=Role.EDITOR)  # who, before what
        data = serializers.RequestChangesSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not run.steps.filter(node_key=node_key).exists():
            raise Http404(f"The run has no step {node_key!r}.")
        run = services.step_request_changes(
            run=run, node_key=node_key, actor=request.user, **data.validated_data, request=request
        )
        return Response(serializers.RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=serializers.RegenerateSerializer, responses={202: serializers.RunSerializer})
    @action(detail=True, methods=["post"], url_path=r"steps/(?P<node_key>[a-z0-9_]+)/regenerate")
    def regenerate(self, request, pk=None, node_key=None):
        run = selectors.run_get(request.user, pk, minimum=Role.EDITOR)
        data = serializers.RegenerateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.step_regenerate(
            run=run, node_key=node_key, actor=request.user, **data.validated_data, request=request
        )
        return Response(serializers.RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
