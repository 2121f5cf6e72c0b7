from django.core.management.base import BaseCommand, CommandError

from audit.chain import Anchor, anchors_check, chain_verify


def _anchor(text: str) -> Anchor:
    try:
        return Anchor.parse(text)
    except ValueError as error:
        raise CommandError(str(error)) from error


class Command(BaseCommand):
    help = (
        "Recompute the audit trail's hash chain from its first event (or from the latest purge checkpoint). "
        "Exits 1 naming the first event that does not verify, or an anchor the trail no longer matches."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--anchor",
            action="append",
            default=[],
            metavar="ID:HASH",
            help="A chain head recorded earlier (audit_anchor, the hourly 'audit anchor' log line); repeatable.",
        )

    def handle(self, *args, **options) -> None:
        anchors = [_anchor(text) for text in options["anchor"]]
        result = chain_verify()
        if not result.ok:
            raise CommandError(
                f"Audit chain broken at event #{result.broken_id}: {result.reason} "
                f"({result.count} events from #{result.start_id} verified before it)."
            )
        problems, notes = anchors_check(anchors) if anchors else ([], [])
        for note in notes:
            self.stderr.write(f"Note: {note}.")
        if problems:
            raise CommandError("Audit trail contradicts its anchors: " + "; ".join(problems) + ".")
        checked = f" and matches {len(anchors) - len(notes)} anchor(s)" if anchors else ""
        self.stdout.write(
            f"Verified {result.count} audit events (#{result.start_id} onwards): the chain is intact{checked}."
        )
