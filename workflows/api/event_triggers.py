"""Event triggers: start a workflow when a run of another workflow of its workspace ends.

    GET/POST          /api/v3/workflows/{id}/event-triggers   the triggers that start this workflow
    GET/PATCH/DELETE  /api/v3/event-triggers/{id}
    GET               /api/v3/event-triggers/{id}/refusals    source runs whose end it did not follow, and why

Viewers read, editors write; a trigger of a workspace one is not a member of does not exist (404).
"""

import uuid

from django.http import Http404
from django.urls import re_path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Role, ensure_role
from accounts.models import User
from workflows import selectors
from workflows.models import EventTrigger, Run
from workflows.services import event_triggers as services

NO_SUCH_TRIGGER = "No such event trigger."
# How many source runs the refusals endpoint lists, newest first.
MAX_REFUSALS = 100


class EventTriggerSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)

    class Meta:
        model = EventTrigger
        fields = ["id", "workflow", "source_workflow", "on", "input_template", "enabled", "created_by", "created_at"]


class EventTriggerWriteSerializer(serializers.Serializer):
    """Documents the body of POST and PATCH; the service validates it."""

    # The service answers "Unknown field." for others (core.openapi).
    unknown_fields_refused = True
    ignored_fields = services.IGNORED_FIELDS

    source_workflow = serializers.UUIDField(help_text="A workflow of the same workspace.")
    on = serializers.ChoiceField(choices=EventTrigger.On.choices, required=False, default=EventTrigger.On.SUCCEEDED)
    input_template = serializers.DictField(
        required=False,
        allow_null=True,
        help_text="A JSON object whose strings are templates over `source` (output, run, workflow). "
        "Null: the source run's output is the input.",
    )
    enabled = serializers.BooleanField(required=False, default=True)


class RefusalSerializer(serializers.Serializer):
    source_run = serializers.UUIDField()
    source_status = serializers.CharField()
    workflow = serializers.UUIDField()
    reason = serializers.CharField()
    at = serializers.CharField(allow_null=True)


def _trigger_get(user: User, trigger_id, *, minimum: str = Role.VIEWER) -> EventTrigger:
    """The trigger if `user` holds at least `minimum` in its workspace; Http404 hides the rest."""
    try:
        trigger = EventTrigger.objects.select_related("workflow__workspace", "created_by").get(
            pk=uuid.UUID(str(trigger_id))
        )
    except (ValueError, EventTrigger.DoesNotExist) as error:
        raise Http404(NO_SUCH_TRIGGER) from error
    if trigger.workflow.is_deleted:
        raise Http404(NO_SUCH_TRIGGER)
    ensure_role(user, trigger.workflow.workspace, minimum, not_found=NO_SUCH_TRIGGER)
    return trigger


def _refusals(trigger: EventTrigger) -> list[dict]:
    # jsonb containment: the source runs whose refusal list holds an entry for this trigger.
    runs = (
        Run.objects.filter(
            workflow_id=trigger.source_workflow_id, refused_triggers__contains=[{"trigger": str(trigger.pk)}]
        )
        .only("id", "status", "refused_triggers", "created_at")
        .order_by("-created_at")[:MAX_REFUSALS]
    )
    return [
        {
            "source_run": run.pk,
            "source_status": run.status,
            "workflow": entry["workflow"],
            "reason": entry["reason"],
            "at": entry.get("at"),
        }
        for run in runs
        for entry in run.refused_triggers
        if entry.get("trigger") == str(trigger.pk)
    ]


class WorkflowEventTriggersView(APIView):
    @extend_schema(responses=EventTriggerSerializer(many=True))
    def get(self, request, workflow_id):
        workflow = selectors.workflow_get(request.user, workflow_id)
        triggers = workflow.event_triggers.select_related("created_by").order_by("created_at")
        return Response(EventTriggerSerializer(triggers, many=True).data)

    @extend_schema(request=EventTriggerWriteSerializer, responses={201: EventTriggerSerializer})
    def post(self, request, workflow_id):
        workflow = selectors.workflow_get(request.user, workflow_id)
        trigger = services.event_trigger_create(
            workflow=workflow, actor=request.user, data=request.data, request=request
        )
        return Response(EventTriggerSerializer(trigger).data, status=status.HTTP_201_CREATED)


class EventTriggerView(APIView):
    @extend_schema(responses=EventTriggerSerializer)
    def get(self, request, trigger_id):
        return Response(EventTriggerSerializer(_trigger_get(request.user, trigger_id)).data)

    @extend_schema(request=EventTriggerWriteSerializer(partial=True), responses=EventTriggerSerializer)
    def patch(self, request, trigger_id):
        trigger = services.event_trigger_update(
            trigger=_trigger_get(request.user, trigger_id), actor=request.user, data=request.data, request=request
        )
        return Response(EventTriggerSerializer(trigger).data)

    @extend_schema(responses={204: None})
    def delete(self, request, trigger_id):
        services.event_trigger_delete(
            trigger=_trigger_get(request.user, trigger_id), actor=request.user, request=request
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class EventTriggerRefusalsView(APIView):
    @extend_schema(responses=RefusalSerializer(many=True))
    def get(self, request, trigger_id):
        trigger = _trigger_get(request.user, trigger_id)
        return Response(RefusalSerializer(_refusals(trigger), many=True).data)


UUID = r"[0-9a-fA-F-]{36}"

urlpatterns = [
    re_path(
        rf"^workflows/(?P<workflow_id>{UUID})/event-triggers/?$",
        WorkflowEventTriggersView.as_view(),
        name="workflow-event-triggers",
    ),
    re_path(rf"^event-triggers/(?P<trigger_id>{UUID})/?$", EventTriggerView.as_view(), name="event-trigger"),
    re_path(
        rf"^event-triggers/(?P<trigger_id>{UUID})/refusals/?$",
        EventTriggerRefusalsView.as_view(),
        name="event-trigger-refusals",
    ),
]
