"""`manage.py engine drain|resume|status`: hold the engine for a deploy or an incident, and let it go."""

from django.core.management.base import BaseCommand, CommandError

from core.problems import Conflict
from workflows.services import run_control


class Command(BaseCommand):
    help = (
        "drain: workers finish the steps they hold and start no new ones (runs are still accepted); "
        "resume: end the drain and send every held step; status: whether it drains and what runs and waits. "
        "Audited as done by the system (no user)."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["drain", "resume", "status"])
        parser.add_argument("--reason", default="", help="Why the engine drains (shown on the status).")
        parser.add_argument(
            "--wait",
            type=float,
            default=0,
            metavar="SECONDS",
            help="With drain: wait up to SECONDS for the running steps to finish; exit 1 if some still run.",
        )

    def handle(self, *args, action: str, reason: str, wait: float, **options):
        try:
            if action == "drain":
                shown = run_control.engine_drain(actor=None, reason=reason)
                if wait:
                    shown = run_control.engine_drained_within(wait)
            elif action == "resume":
                shown = run_control.engine_resume(actor=None)
            else:
                shown = run_control.engine_status()
        except Conflict as error:
            raise CommandError(str(error)) from error
        state = f"draining since {shown.since:%Y-%m-%d %H:%M:%S} UTC" if shown.draining else "running"
        if shown.reason:
            state += f" ({shown.reason})"
        self.stdout.write(f"engine: {state}; steps running: {shown.running_steps}; steps held: {shown.held_steps}")
        if action == "drain" and wait and shown.running_steps:
            raise CommandError(f"{shown.running_steps} steps still run after {wait:g} s.")
