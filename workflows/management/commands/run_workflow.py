import json
import logging
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.http import Http404

from accounts.access import personal_workspace, workspace_first_owner
from accounts.models import User, Workspace
from config import embedded
from core.problems import Conflict
from workflows.management.json_files import json_file_read
from workflows.models import Run, StepRun, Workflow
from workflows.services.runs import run_trigger
from workflows.services.transfer import workflows_import

POLL_SECONDS = 0.2
# The in-process worker logs every task; between the step lines that is noise unless asked for (-v 2).
WORKER_LOGGERS = ("celery", "django_celery_beat", "config.embedded")

NO_SUCH_WORKFLOW = "No workflow has the id or slug {ref!r}{where}."
AMBIGUOUS_SLUG = "The slug {slug!r} is used in {count} workspaces ({ids}); name one with --workspace."
NO_SUCH_WORKSPACE = "No such workspace: {id}."
NO_SUCH_USER = "No user with the email {email}."
NOBODY_TO_RUN_AS = "There is no superuser and workspace {id} has no owner; name a user with --as EMAIL."
NOWHERE_TO_IMPORT = "There is no superuser to import as; name a user with --as EMAIL or a workspace with --workspace."
NO_PERSONAL_WORKSPACE = "{email} has no personal workspace to import into; name a workspace with --workspace."
NOT_ONE_DOCUMENT = "{path} holds {count} workflows; run_workflow runs one (import_workflows imports them all)."
INVALID_DOCUMENT = "Nothing imported; {path} has errors:\n{errors}"
SLUG_HINT = "A workflow with the slug {slug!r} exists in this workspace already; run it with: run_workflow {slug}"
BAD_INPUT = "--input is not valid JSON: {reason}."
INPUT_REJECTED = "The input was rejected; nothing was started:\n{errors}"
NOT_ALLOWED = "{email} may not run workflows in workspace {id}: {reason}"
CANNOT_START = "Cannot start {name}: {reason}"
BAD_TIMEOUT = "--timeout must be more than 0 seconds."
TIMED_OUT = "Stopped waiting after {seconds:g} s: run {id} is still {status} (it was not cancelled)."
INTERRUPTED = "Stopped waiting: run {id} is still {status} (it was not cancelled)."
RUN_DID_NOT_SUCCEED = "Run {id} {status}: {message}"
EMBEDDED_NO_WAIT = (
    "Embedded mode: the run starts when the server runs (manage.py serve); pass --wait to run it here instead."
)


class Command(BaseCommand):
    help = (
        "Start a run of a workflow, named by id or slug, or imported from an export file first; with --wait, "
        "follow it to the end, printing each step as it finishes and the run's output. Exits 1 when the run "
        "fails, is cancelled or outlasts --timeout. Runs as --as EMAIL, else the first superuser, else an "
        "owner of the workspace."
    )

    def add_arguments(self, parser):
        parser.add_argument("workflow", help="A workflow id, a workflow slug, or the path of an export file.")
        parser.add_argument("--input", default="{}", help="The run input, a JSON object (default: {}).")
        parser.add_argument(
            "--workspace",
            help="Workspace id: where a slug is looked up, or an export file imported "
            "(default: the personal workspace of the user the run is made as).",
        )
        parser.add_argument("--as", dest="email", help="Email of the user the run is made as.")
        parser.add_argument("--wait", action="store_true", help="Follow the run until it finishes.")
        parser.add_argument(
            "--timeout", type=float, default=600, help="With --wait: give up after this many seconds (default 600)."
        )

    def handle(
        self,
        *args,
        workflow: str,
        input: str,
        workspace: str | None,
        email: str | None,
        wait: bool,
        timeout: float,
        **options,
    ):
        run_input = _parse_input(input)
        if timeout <= 0:
            raise CommandError(BAD_TIMEOUT)
        space = _workspace(workspace) if workspace else None
        target = _find_workflow(workflow, space)
        document = _read_document(Path(workflow)) if target is None else None
        actor, reason = _actor(email, target.workspace if target else space)
        if document is not None and space is None:
            space = personal_workspace(actor)
            if space is None:
                raise CommandError(NO_PERSONAL_WORKSPACE.format(email=actor.email))
        self.stdout.write(f"Running as {actor.email} ({reason}).")

        # In the embedded mode nothing else would execute the run: this process hosts the worker.
        hosts_worker = wait and settings.DWC_MODE == "embedded"
        quieted = _quiet(WORKER_LOGGERS) if hosts_worker and options["verbosity"] < 2 else {}
        if hosts_worker:
            embedded.start()
        try:
            run = self._start(target, document, workflow, space, actor, run_input)
            self.stdout.write(f"Run {run.pk} {run.status}")
            if not wait:
                if settings.DWC_MODE == "embedded":
                    self.stdout.write(EMBEDDED_NO_WAIT)
                return
            run = self._follow(run, timeout)
        finally:
            if hosts_worker:
                embedded.stop()
            for name, level in quieted.items():
                logging.getLogger(name).setLevel(level)
        self._report(run)

    def _start(self, target, document, path, space, actor: User, run_input: dict) -> Run:
        """Import (when given a file) and trigger in one transaction: a run that cannot start leaves nothing."""
        with transaction.atomic():
            workflow = target if document is None else _import(document, path, space, actor)
            try:
                run, _ = run_trigger(workflow=workflow, input=run_input, trigger=Run.Trigger.MANUAL, actor=actor)
            except ValidationError as error:
                raise CommandError(INPUT_REJECTED.format(errors=_error_lines(error))) from error
            except Conflict as error:
                raise CommandError(CANNOT_START.format(name=workflow.name, reason=error)) from error
            except (PermissionDenied, Http404) as error:
                raise CommandError(
                    NOT_ALLOWED.format(email=actor.email, id=workflow.workspace_id, reason=error)
                ) from error
        if document is not None:
            self.stdout.write(f"Imported {path} as workflow {workflow.pk} ({workflow.name}).")
        return run

    def _follow(self, run: Run, timeout: float) -> Run:
        """Poll the database until the run finishes, printing each step once it has finished."""
        deadline = time.monotonic() + timeout
        width = max((len(key) for key in run.steps.values_list("node_key", flat=True)), default=0)
        printed: set[tuple] = set()
        try:
            while True:
                # The run first: once it has finished, its steps had finished in the same transaction.
                run = Run.objects.get(pk=run.pk)
                finished = StepRun.objects.filter(run=run, status__in=StepRun.FINISHED).order_by(
                    "finished_at", "node_key"
                )
                for step in finished:
                    if (step.pk, step.attempt) not in printed:
                        printed.add((step.pk, step.attempt))
                        self._step_line(step, width)
                if run.is_finished:
                    return run
                if time.monotonic() >= deadline:
                    raise CommandError(TIMED_OUT.format(seconds=timeout, id=run.pk, status=run.status))
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            raise CommandError(INTERRUPTED.format(id=run.pk, status=run.status)) from None

    def _step_line(self, step: StepRun, width: int) -> None:
        duration = f"{step.duration_ms:.0f} ms" if step.duration_ms is not None else "-"
        self.stdout.write(f"{step.node_key:<{width}}  {step.status:<9}  attempt {step.attempt}  {duration}")
        if step.status == StepRun.Status.FAILED:
            for line in _error_message(step.error).splitlines():
                self.stdout.write(f"    {line}", style_func=self.style.ERROR)

    def _report(self, run: Run) -> None:
        seconds = (run.finished_at - run.started_at).total_seconds() if run.started_at and run.finished_at else 0
        if run.status != Run.Status.SUCCEEDED:
            self.stdout.write(f"Run {run.pk} {run.status} after {seconds:.2f} s", style_func=self.style.ERROR)
            message = _error_message(run.error) if run.error else "no step failed; it was stopped"
            raise CommandError(RUN_DID_NOT_SUCCEED.format(id=run.pk, status=run.status, message=message))
        self.stdout.write(f"Run {run.pk} succeeded in {seconds:.2f} s", style_func=self.style.SUCCESS)
        self.stdout.write(json.dumps(run.output, indent=2, ensure_ascii=False))


def _quiet(names: tuple[str, ...]) -> dict[str, int]:
    """Raise these loggers to WARNING; returns their levels before, to restore."""
    levels = {}
    for name in names:
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.WARNING)
    return levels


def _parse_input(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise CommandError(BAD_INPUT.format(reason=error)) from error


def _workspace(raw: str) -> Workspace:
    try:
        return Workspace.objects.get(pk=uuid.UUID(raw))
    except (ValueError, Workspace.DoesNotExist):
        raise CommandError(NO_SUCH_WORKSPACE.format(id=raw)) from None


def _looks_like_a_path(ref: str) -> bool:
    return "/" in ref or "\\" in ref or ref.endswith(".json") or Path(ref).exists()


def _find_workflow(ref: str, workspace: Workspace | None) -> Workflow | None:
    """The workflow `ref` names by id or slug, or None when `ref` is a file to import."""
    workflows = Workflow.objects.filter(deleted_at__isnull=True).select_related("workspace")
    if workspace is not None:
        workflows = workflows.filter(workspace=workspace)
    where = f" in workspace {workspace.pk}" if workspace is not None else ""
    try:
        pk = uuid.UUID(ref)
    except ValueError:
        pk = None
    if pk is not None:
        workflow = workflows.filter(pk=pk).first()
        if workflow is None:
            raise CommandError(NO_SUCH_WORKFLOW.format(ref=ref, where=where))
        return workflow
    if Path(ref).is_file():
        return None
    matches = list(workflows.filter(slug=ref))
    if len(matches) > 1:
        ids = ", ".join(str(workflow.workspace_id) for workflow in matches)
        raise CommandError(AMBIGUOUS_SLUG.format(slug=ref, count=len(matches), ids=ids))
    if matches:
        return matches[0]
    if _looks_like_a_path(ref):
        return None  # reading it says why it cannot be used
    raise CommandError(NO_SUCH_WORKFLOW.format(ref=ref, where=where))


def _read_document(path: Path) -> dict:
    document = json_file_read(path)
    # export_workflows writes a list; a list of one is one workflow.
    if isinstance(document, list):
        if len(document) != 1:
            raise CommandError(NOT_ONE_DOCUMENT.format(path=path, count=len(document)))
        document = document[0]
    return document


def _actor(email: str | None, workspace: Workspace | None) -> tuple[User, str]:
    if email:
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(NO_SUCH_USER.format(email=email))
        return user, "given with --as"
    superuser = User.objects.filter(is_superuser=True, is_active=True).order_by("date_joined").first()
    if superuser is not None:
        return superuser, "the first superuser"
    if workspace is None:
        raise CommandError(NOWHERE_TO_IMPORT)
    owner = workspace_first_owner(workspace)
    if owner is None:
        raise CommandError(NOBODY_TO_RUN_AS.format(id=workspace.pk))
    return owner, f"an owner of workspace {workspace.name}"


def _import(document, path: str, workspace: Workspace, actor: User) -> Workflow:
    try:
        [workflow] = workflows_import(actor=actor, workspace=workspace, documents=document)
    except ValidationError as error:
        errors = _error_lines(error)
        slug = document.get("slug") if isinstance(document, dict) else None
        if slug and "slug" in getattr(error, "error_dict", {}):
            errors += "\n" + SLUG_HINT.format(slug=slug)
        raise CommandError(INVALID_DOCUMENT.format(path=path, errors=errors)) from error
    except (PermissionDenied, Http404) as error:
        raise CommandError(NOT_ALLOWED.format(email=actor.email, id=workspace.pk, reason=error)) from error
    return workflow


def _error_lines(error: ValidationError) -> str:
    errors = error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages}
    return "\n".join(f"  {field}: {message}" for field, messages in errors.items() for message in messages)


def _error_message(error: dict | None) -> str:
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message") or "no message")
    return f"{error['type']}: {message}" if error.get("type") else message
