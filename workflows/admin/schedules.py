"""Admin for schedules. Saving, deleting and the actions go through the schedule services, so the
schedule's django-celery-beat PeriodicTask and crontab always follow what the operator sets here."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.urls import reverse
from django.utils.html import format_html
from django_celery_beat import admin as celery_beat_admin  # noqa: F401 - registers what is replaced below
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from audit.admin_writes import ServiceDeleteAdminMixin, register_read_only
from core.problems import Conflict
from core.request_text import StorableJSONFormField
from workflows.admin.read_only import ReadOnlyTabularInline
from workflows.models import Schedule, ScheduleSlot
from workflows.services.schedule_slots import schedule_next_fire_times
from workflows.services.schedules import (
    EDITABLE_FIELDS,
    schedule_delete,
    schedule_fields_check,
    schedule_save,
    schedule_trigger_now,
    schedule_update,
)

RECENT_SLOTS = 50


def _error_text(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    return str(error)


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = ["workflow", *EDITABLE_FIELDS]
        field_classes = {"input": StorableJSONFormField}
        widgets = {"input": forms.Textarea(attrs={"rows": 4, "cols": 80})}

    def clean(self):
        cleaned = super().clean()
        if "input" in cleaned and cleaned["input"] is None:
            cleaned["input"] = {}
        checked = {name: cleaned[name] for name in EDITABLE_FIELDS if name in cleaned}
        for field, field_messages in schedule_fields_check(checked).items():
            for message in field_messages:
                self.add_error(field, message)
        return cleaned


class ScheduleSlotInline(ReadOnlyTabularInline):
    model = ScheduleSlot
    ordering = ["-slot"]
    fields = ["slot", "outcome", "run_link", "backfill", "created_at"]
    readonly_fields = fields
    verbose_name_plural = f"Latest {RECENT_SLOTS} slots"

    @admin.display(description="Run")
    def run_link(self, row: ScheduleSlot) -> str:
        if row.run_id is None:
            return "—"
        url = reverse("admin:workflows_run_change", args=[row.run_id], current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a>', url, str(row.run_id)[:8])


@admin.register(Schedule)
class ScheduleAdmin(ServiceDeleteAdminMixin, admin.ModelAdmin):
    form = ScheduleForm
    list_display = ["workflow", "cron", "timezone", "enabled", "overlap", "next_fire_time", "last_slot"]
    list_filter = ["enabled", "overlap", "catchup"]
    list_select_related = ["workflow"]
    search_fields = ["workflow__name", "cron"]
    autocomplete_fields = ["workflow"]
    inlines = [ScheduleSlotInline]
    actions = ["enable", "disable", "trigger_now"]
    readonly_fields = ["id", "next_fire_times", "last_slot", "periodic_task_link", "created_by", "created_at"]
    fieldsets = [
        (None, {"fields": ["workflow", *EDITABLE_FIELDS]}),
        ("Record", {"fields": readonly_fields}),
    ]
    delete_select_related = ["workflow__workspace"]

    def get_readonly_fields(self, request, obj=None):
        # A schedule's slots and runs belong to its workflow; it does not move to another one.
        return [*self.readonly_fields, "workflow"] if obj is not None else self.readonly_fields

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, ScheduleSlotInline) and obj is not None:
            # An inline's queryset is filtered by its parent after get_queryset, so it cannot be sliced there.
            latest = ScheduleSlot.objects.filter(schedule=obj).order_by("-slot").values("pk")[:RECENT_SLOTS]
            kwargs["queryset"] = ScheduleSlot.objects.filter(pk__in=latest).select_related("run")
        return kwargs

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        schedule_save(schedule=obj, actor=request.user, request=request)

    def delete_through_service(self, request, obj):
        schedule_delete(schedule=obj, actor=request.user, request=request)

    @admin.display(description="Next fire time")
    def next_fire_time(self, schedule: Schedule) -> str:
        upcoming = schedule_next_fire_times(schedule, count=1)
        return f"{upcoming[0]:%Y-%m-%d %H:%M} {upcoming[0].tzname()}" if upcoming else "—"

    @admin.display(description="Next fire times")
    def next_fire_times(self, schedule: Schedule) -> str:
        upcoming = [] if schedule._state.adding else schedule_next_fire_times(schedule)
        return ", ".join(slot.isoformat() for slot in upcoming) or "—"

    @admin.display(description="Beat task")
    def periodic_task_link(self, schedule: Schedule) -> str:
        if schedule.periodic_task_id is None:
            return "—"
        url = reverse(
            "admin:django_celery_beat_periodictask_change",
            args=[schedule.periodic_task_id],
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">{}</a>', url, schedule.periodic_task)

    def _each(self, request, queryset, act, done: str) -> None:
        count = 0
        for schedule in queryset.select_related("workflow__workspace"):
            try:
                act(schedule)
            except (ValidationError, Conflict, PermissionDenied, Http404) as error:
                self.message_user(request, f"{schedule}: {_error_text(error)}", messages.ERROR)
            else:
                count += 1
        if count:
            self.message_user(request, f"{done} {count} schedule(s).", messages.SUCCESS)

    def _enabled_set(self, request, queryset, enabled: bool, done: str) -> None:
        self._each(
            request,
            queryset,
            lambda s: schedule_update(schedule=s, actor=request.user, data={"enabled": enabled}, request=request),
            done,
        )

    @admin.action(description="Enable selected schedules", permissions=["change"])
    def enable(self, request, queryset):
        self._enabled_set(request, queryset, True, "Enabled")

    @admin.action(description="Disable selected schedules", permissions=["change"])
    def disable(self, request, queryset):
        self._enabled_set(request, queryset, False, "Disabled")

    @admin.action(description="Trigger selected schedules now", permissions=["change"])
    def trigger_now(self, request, queryset):
        def trigger(schedule: Schedule) -> None:
            run = schedule_trigger_now(schedule=schedule, actor=request.user, request=request)
            self.message_user(request, f"Started run {run.pk} of {schedule.workflow.name}.", messages.SUCCESS)

        self._each(request, queryset, trigger, "Triggered")


# Schedules own their PeriodicTasks and crontabs: edit the Schedule, not these.
register_read_only(PeriodicTask, CrontabSchedule, IntervalSchedule, SolarSchedule, ClockedSchedule)
