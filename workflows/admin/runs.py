"""Runs are read-only history: operators act on them only through the run services (cancel, retry,
pause, resume)."""

import json
from functools import partial

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.problems import Conflict
from workflows.admin.read_only import ReadOnlyAdminMixin, ReadOnlyTabularInline
from workflows.models import Run, RunEvent, StepRun
from workflows.services.run_control import run_pause, run_resume
from workflows.services.runs import run_cancel, run_retry

RECENT_EVENTS = 20


def _seconds(start, end) -> str:
    if start is None:
        return "—"
    seconds = ((end or timezone.now()) - start).total_seconds()
    text = f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
    return text if end else f"{text} so far"


def _pretty_json(value) -> str:
    if value is None:
        return "—"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


class StepRunInline(ReadOnlyTabularInline):
    model = StepRun
    ordering = ["queued_at", "node_key"]
    fields = ["node_key", "node_type", "status", "attempt", "started_at", "finished_at", "duration", "error_summary"]
    readonly_fields = fields
    show_change_link = False

    @admin.display(description="Duration")
    def duration(self, step: StepRun) -> str:
        if step.duration_ms is not None:
            return f"{step.duration_ms:.0f} ms"
        return _seconds(step.started_at, step.finished_at) if step.started_at else "—"

    @admin.display(description="Error")
    def error_summary(self, step: StepRun) -> str:
        error = step.error if isinstance(step.error, dict) else {}
        message = str(error.get("message", ""))
        if not message:
            return "—"
        summary = f"{error['type']}: {message}" if error.get("type") else message
        return summary if len(summary) <= 200 else f"{summary[:199]}…"


@admin.register(Run)
class RunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Run history, read-only: the engine alone writes runs; operators cancel and retry through actions."""

    list_display = ["short_id", "workflow", "status", "trigger", "created_at", "duration"]
    list_filter = ["status", ("workflow", admin.RelatedOnlyFieldListFilter), "trigger"]
    # The workflow only: a version holds a whole definition snapshot, which the list has no use for.
    list_select_related = ["workflow"]
    # `^id`: an id prefix, such as the short id the list shows.
    search_fields = ["^id", "workflow__name"]
    # Counting a large run table on every page costs more than the exact total is worth.
    show_full_result_count = False
    actions = ["cancel", "retry", "pause", "pause_now", "resume"]
    inlines = [StepRunInline]
    fieldsets = [
        (None, {"fields": ["id", "workflow", "version_number", "status", "trigger", "created_by", "parent_run"]}),
        ("Timing", {"fields": ["created_at", "started_at", "finished_at", "deadline_at", "duration"]}),
        ("Data", {"fields": ["input_json", "output_json", "error_json", "idempotency_key"]}),
        ("Events", {"fields": ["recent_events"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_operate_permission(self, request) -> bool:
        # The admin never edits a run's fields, so Django's change permission means "may act on runs".
        return request.user.has_perm("workflows.change_run")

    def _each(self, request, queryset, service, done: str) -> None:
        count = 0
        for run in queryset.select_related("workspace"):
            try:
                service(run=run, actor=request.user, request=request)
            except (Conflict, PermissionDenied, Http404) as error:
                self.message_user(request, f"Run {run.pk}: {error}", messages.ERROR)
            else:
                count += 1
        if count:
            self.message_user(request, f"{done} {count} run(s).", messages.SUCCESS)

    @admin.action(description="Cancel selected runs", permissions=["operate"])
    def cancel(self, request, queryset):
        self._each(request, queryset, run_cancel, "Cancelled")

    @admin.action(description="Retry selected runs (failed or cancelled ones)", permissions=["operate"])
    def retry(self, request, queryset):
        self._each(request, queryset, run_retry, "Re-queued")

    @admin.action(description="Pause selected runs (running steps finish)", permissions=["operate"])
    def pause(self, request, queryset):
        self._each(request, queryset, run_pause, "Paused")

    @admin.action(description="Pause selected runs now (steps safe to rerun are stopped)", permissions=["operate"])
    def pause_now(self, request, queryset):
        self._each(request, queryset, partial(run_pause, stop=True), "Paused")

    @admin.action(description="Resume selected runs", permissions=["operate"])
    def resume(self, request, queryset):
        self._each(request, queryset, run_resume, "Resumed")

    @admin.display(description="Run", ordering="id")
    def short_id(self, run: Run) -> str:
        return str(run.pk)[:8]

    @admin.display(description="Duration")
    def duration(self, run: Run) -> str:
        return _seconds(run.started_at, run.finished_at)

    @admin.display(description="Version")
    def version_number(self, run: Run) -> int:
        return run.version.number

    @admin.display(description="Parent run")
    def parent_run(self, run: Run) -> str:
        if run.parent_step is None:
            return "—"
        url = reverse("admin:workflows_run_change", args=[run.parent_step.run_id], current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a> (step {})', url, run.parent_step.run_id, run.parent_step.node_key)

    @admin.display(description="Input")
    def input_json(self, run: Run) -> str:
        return _pretty_json(run.input)

    @admin.display(description="Output")
    def output_json(self, run: Run) -> str:
        return _pretty_json(run.output)

    @admin.display(description="Error")
    def error_json(self, run: Run) -> str:
        return _pretty_json(run.error)

    @admin.display(description=f"Last {RECENT_EVENTS} events")
    def recent_events(self, run: Run) -> str:
        events = list(RunEvent.objects.filter(run=run).order_by("-seq")[:RECENT_EVENTS])
        if not events:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (
                    event.seq,
                    timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                    event.type,
                    event.step or "",
                    _event_data(event.data),
                )
                for event in reversed(events)
            ),
        )
        return format_html(
            "<table><thead><tr><th>#</th><th>At</th><th>Event</th><th>Step</th><th>Data</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )


def _event_data(data) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= 300 else f"{text[:299]}…"
