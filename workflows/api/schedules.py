"""Cron schedules of a workflow: create, list, edit, delete, trigger now, backfill, and their slots.

Viewers read, editors write; a schedule of a workspace the caller is not a member of does not exist.
"""

import uuid

import django_filters
from django.db.models import QuerySet
from django.http import Http404
from django.urls import re_path
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.access import Role, ensure_role, workspaces_for_user
from accounts.models import User
from core.filters import BooleanFilter
from core.openapi import TIME_ZONE_FORMAT
from core.routers import OptionalSlashRouter
from workflows import selectors
from workflows.api.serializers import RunSerializer
from workflows.models import Schedule, ScheduleSlot
from workflows.services import schedule_slots
from workflows.services import schedules as services

NO_SUCH_SCHEDULE = "No such schedule."


class ScheduleSerializer(serializers.ModelSerializer):
    next_fire_times = serializers.SerializerMethodField(
        help_text="The next five slots, in the schedule's time zone (ISO-8601 with offset); none while disabled."
    )

    class Meta:
        model = Schedule
        fields = [
            "id",
            "workflow",
            "cron",
            "timezone",
            "input",
            "enabled",
            "overlap",
            "catchup",
            "last_slot",
            "next_fire_times",
            "periodic_task",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_next_fire_times(self, schedule: Schedule) -> list[str]:
        return [slot.isoformat() for slot in schedule_slots.schedule_next_fire_times(schedule)]


# Five fields that both cronsim and Celery beat read (workflows.services.schedules.cron_errors): each a
# `*` (with a step), a number in range or a list of them; the day of month or the day of week is `*`.
# Cron takes more (ranges, names); this is the part the schema vouches for.
def _cron_field(number: str) -> str:
    return rf"(?:\*(?:/[1-9])?|(?:{number})(?:,(?:{number}))*)"


_DAYS_ANY = r"\*(?:/[1-9])?"
CRON_PATTERN = (
    rf"^{_cron_field('[1-5]?[0-9]')} {_cron_field('1?[0-9]|2[0-3]')} "
    rf"(?:{_DAYS_ANY} {_cron_field('[1-9]|1[0-2]')} {_cron_field('[0-6]')}"
    rf"|{_cron_field('[1-9]|1[0-9]|2[0-8]')} {_cron_field('[1-9]|1[0-2]')} {_DAYS_ANY})$"
)
# A name of the IANA time zone database as zoneinfo knows it (its ~600 names would be a long enum).
TIME_ZONE = {"format": TIME_ZONE_FORMAT, "description": "An IANA time zone, such as Europe/Berlin; default UTC."}


class ScheduleWriteSerializer(serializers.Serializer):
    """Documents the body of POST/PATCH schedules; the service validates it."""

    # The service answers "Unknown field." for others (core.openapi).
    unknown_fields_refused = True
    ignored_fields = services.IGNORED_FIELDS
    request_schema_rules = {"properties": {"cron": {"pattern": CRON_PATTERN}, "timezone": TIME_ZONE}}

    cron = serializers.CharField(help_text='Five fields, e.g. "30 2 * * 1-5".')
    timezone = serializers.CharField(required=False)
    input = serializers.DictField(required=False, help_text="The run input; each run also gets `_slot` (UTC).")
    enabled = serializers.BooleanField(required=False)
    overlap = serializers.ChoiceField(choices=Schedule.Overlap.choices, required=False)
    catchup = serializers.ChoiceField(choices=Schedule.Catchup.choices, required=False)


class ScheduleSlotSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScheduleSlot
        fields = ["slot", "outcome", "run", "backfill"]


class BackfillSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="The first slot time to cover (inclusive).")
    end = serializers.DateTimeField(help_text="The last slot time to cover (inclusive); not in the future.")


class ScheduleFilter(django_filters.FilterSet):
    workflow = django_filters.UUIDFilter(field_name="workflow_id")
    enabled = BooleanFilter()

    class Meta:
        model = Schedule
        fields = ["workflow", "enabled"]


def schedules_for_user(user: User) -> QuerySet[Schedule]:
    return Schedule.objects.filter(
        workflow__workspace__in=workspaces_for_user(user), workflow__deleted_at__isnull=True
    ).select_related("workflow")


def schedule_get(user: User, schedule_id, *, minimum: str = Role.VIEWER) -> Schedule:
    """The schedule if `user` holds `minimum` in its workspace; Http404 hides it from non-members."""
    try:
        schedule = Schedule.objects.select_related("workflow__workspace").get(pk=uuid.UUID(str(schedule_id)))
    except (ValueError, Schedule.DoesNotExist) as error:
        raise Http404(NO_SUCH_SCHEDULE) from error
    if schedule.workflow.is_deleted:
        raise Http404(NO_SUCH_SCHEDULE)
    ensure_role(user, schedule.workflow.workspace, minimum, not_found=NO_SUCH_SCHEDULE)
    return schedule


class WorkflowSchedulesView(generics.GenericAPIView):
    """`/workflows/{id}/schedules`: the workflow's schedules (GET), a new one (POST, 201)."""

    serializer_class = ScheduleSerializer

    def get_queryset(self):
        return Schedule.objects.none()  # for the schema; the views below read through the workflow

    @extend_schema(responses=ScheduleSerializer(many=True))
    def get(self, request, workflow_id):
        workflow = selectors.workflow_get(request.user, workflow_id)
        page = self.paginate_queryset(workflow.schedules.order_by("created_at"))
        return self.get_paginated_response(ScheduleSerializer(page, many=True).data)

    @extend_schema(request=ScheduleWriteSerializer, responses={201: ScheduleSerializer})
    def post(self, request, workflow_id):
        workflow = selectors.workflow_get(request.user, workflow_id)
        schedule = services.schedule_create(workflow=workflow, actor=request.user, data=request.data, request=request)
        return Response(ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)


class ScheduleViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = ScheduleSerializer
    filterset_class = ScheduleFilter
    ordering_fields = ["created_at", "last_slot"]
    ordering = ["created_at"]
    search_fields: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Schedule.objects.none()
        return schedules_for_user(self.request.user)

    def _get(self) -> Schedule:
        return schedule_get(self.request.user, self.kwargs["pk"])

    def retrieve(self, request, pk=None):
        return Response(ScheduleSerializer(self._get()).data)

    @extend_schema(request=ScheduleWriteSerializer)
    def partial_update(self, request, pk=None):
        schedule = services.schedule_update(
            schedule=self._get(), actor=request.user, data=request.data, request=request
        )
        return Response(ScheduleSerializer(schedule).data)

    def destroy(self, request, pk=None):
        services.schedule_delete(schedule=self._get(), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"], url_path="trigger-now")
    def trigger_now(self, request, pk=None):
        run = services.schedule_trigger_now(schedule=self._get(), actor=request.user, request=request)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=BackfillSerializer, responses={202: ScheduleSlotSerializer(many=True)})
    @action(detail=True, methods=["post"])
    def backfill(self, request, pk=None):
        """One run per slot in the range (202, every slot of the range); slots already handled stay as they are."""
        # The role first: a viewer's request is refused as such, whatever its body.
        schedule = schedule_get(request.user, pk, minimum=Role.EDITOR)
        data = BackfillSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rows = schedule_slots.schedule_backfill(
            schedule=schedule, actor=request.user, **data.validated_data, request=request
        )
        return Response(ScheduleSlotSerializer(rows, many=True).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=ScheduleSlotSerializer(many=True))
    @action(detail=True, methods=["get"])
    def slots(self, request, pk=None):
        page = self.paginate_queryset(self._get().slots.order_by("-slot"))
        return self.get_paginated_response(ScheduleSlotSerializer(page, many=True).data)


router = OptionalSlashRouter()
router.register("schedules", ScheduleViewSet, basename="schedule")

urlpatterns = [
    re_path(
        r"^workflows/(?P<workflow_id>[^/.]+)/schedules/?$", WorkflowSchedulesView.as_view(), name="workflow-schedules"
    ),
    *router.urls,
]
