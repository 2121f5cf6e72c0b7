import json
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db.models import QuerySet

from accounts.models import Workspace
from workflows.models import Workflow
from workflows.services.transfer import workflow_export

NO_SUCH_WORKFLOW = "No such workflow: {id}."
NO_SUCH_WORKFLOW_IN_WORKSPACE = "No such workflow in workspace {workspace}: {id}."
NO_SUCH_WORKSPACE = "No such workspace: {id}."


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class Command(BaseCommand):
    help = (
        "Print workflows as a JSON list of export documents (the API's export format). Without ids: every "
        "workflow that is not deleted (of one workspace with --workspace). Ids may name deleted workflows."
    )

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", metavar="ID", help="Workflow ids.")
        parser.add_argument("--workspace", help="Only workflows of this workspace (its id).")

    def handle(self, *args, ids: list[str], workspace: str | None, **options):
        workflows = Workflow.objects.prefetch_related("tag_set").order_by("created_at", "pk")
        if workspace is not None:
            space = Workspace.objects.filter(pk=_uuid(workspace)).first() if _uuid(workspace) else None
            if space is None:
                raise CommandError(NO_SUCH_WORKSPACE.format(id=workspace))
            workflows = workflows.filter(workspace=space)
        if ids:
            selected = [self._workflow(workflows, raw, workspace) for raw in dict.fromkeys(ids)]
        else:
            selected = list(workflows.filter(deleted_at__isnull=True))
        # Every document is built before anything is printed, so an error leaves stdout empty.
        documents = [workflow_export(workflow=workflow) for workflow in selected]
        self.stdout.write(json.dumps(documents, indent=2, ensure_ascii=False))

    def _workflow(self, workflows: QuerySet[Workflow], raw: str, workspace: str | None) -> Workflow:
        pk = _uuid(raw)
        workflow = workflows.filter(pk=pk).first() if pk else None
        if workflow is None:
            message = NO_SUCH_WORKFLOW_IN_WORKSPACE if workspace else NO_SUCH_WORKFLOW
            raise CommandError(message.format(id=raw, workspace=workspace))
        return workflow
