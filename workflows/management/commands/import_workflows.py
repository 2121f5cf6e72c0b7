import uuid
from pathlib import Path

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from accounts.access import workspace_first_owner
from accounts.models import User, Workspace
from workflows.management.json_files import json_file_read
from workflows.services.transfer import workflows_import

NO_SUCH_WORKSPACE = "No such workspace: {id}."
NO_SUCH_USER = "No user with the email {email}."
NO_OWNER = "Workspace {id} has no owner to import as; name a member with --as EMAIL."
NOT_ALLOWED = "{email} may not create workflows in workspace {id}: {reason}"
INVALID = "Nothing imported; {path} has errors:\n{errors}"


class Command(BaseCommand):
    help = (
        "Import workflows from a JSON file holding one export document or a list of them, all or none, "
        "and print `<id> <name>` for each one created. Imports as --as EMAIL, by default a workspace owner."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the JSON file.")
        parser.add_argument("--workspace", required=True, help="Id of the workspace to import into.")
        parser.add_argument("--as", dest="email", help="Email of the user the import is made as.")

    def handle(self, *args, file: str, workspace: str, email: str | None, **options):
        space = self._workspace(workspace)
        actor = self._actor(space, email)
        documents = json_file_read(Path(file))
        try:
            created = workflows_import(actor=actor, workspace=space, documents=documents)
        except ValidationError as error:
            # Keyed like the API's 400: `nodes.fetch.config.url`, or `1.name` in a list of documents.
            lines = [f"  {field}: {message}" for field, messages in _error_dict(error).items() for message in messages]
            raise CommandError(INVALID.format(path=file, errors="\n".join(lines))) from error
        except (PermissionDenied, Http404) as error:
            raise CommandError(NOT_ALLOWED.format(email=actor.email, id=space.pk, reason=error)) from error
        for workflow in created:
            self.stdout.write(f"{workflow.pk} {workflow.name}")

    def _workspace(self, raw: str) -> Workspace:
        try:
            return Workspace.objects.get(pk=uuid.UUID(raw))
        except (ValueError, Workspace.DoesNotExist):
            raise CommandError(NO_SUCH_WORKSPACE.format(id=raw)) from None

    def _actor(self, workspace: Workspace, email: str | None) -> User:
        if email:
            actor = User.objects.filter(email__iexact=email).first()
            if actor is None:
                raise CommandError(NO_SUCH_USER.format(email=email))
            return actor
        # Services check roles; the owner who joined first is the natural default.
        owner = workspace_first_owner(workspace)
        if owner is None:
            raise CommandError(NO_OWNER.format(id=workspace.pk))
        return owner


def _error_dict(error: ValidationError) -> dict[str, list[str]]:
    return error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages}
