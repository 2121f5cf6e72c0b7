import uuid

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Workspace
from workflows.models import EventTrigger, Schedule, WebhookTrigger
from workflows.services.schedule_slots import schedule_next_fire_times


class Command(BaseCommand):
    help = "List every trigger — webhooks (address masked), schedules with their next fire time, event triggers."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="Only this workspace's triggers (id).")

    def handle(self, *args, workspace=None, **options):
        scope = {}
        if workspace:
            found = Workspace.objects.filter(pk=workspace).first() if _is_uuid(workspace) else None
            if found is None:
                raise CommandError(f"No workspace with id {workspace!r}.")
            scope = {"workflow__workspace": found}
        lines = []
        for hook in WebhookTrigger.objects.filter(**scope).select_related("workflow").order_by("created_at"):
            signed = "signed" if hook.encrypted_secret is not None else "unsigned"
            lines.append(f"webhook   {hook.workflow.name}  /hooks/…{hook.token_hint}/  {signed}")
        for schedule in Schedule.objects.filter(**scope).select_related("workflow").order_by("created_at"):
            upcoming = schedule_next_fire_times(schedule, count=1)
            next_fire = upcoming[0].isoformat() if upcoming else "disabled"
            lines.append(f"schedule  {schedule.workflow.name}  {schedule.cron} ({schedule.timezone})  next {next_fire}")
        for trigger in EventTrigger.objects.filter(**scope).select_related("workflow", "source_workflow"):
            state = "" if trigger.enabled else "  (disabled)"
            lines.append(f"event     {trigger.workflow.name}  when {trigger.source_workflow.name} {trigger.on}{state}")
        self.stdout.write("\n".join(lines) if lines else "No triggers.")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
