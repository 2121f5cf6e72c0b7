from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.services import audit_purge


class Command(BaseCommand):
    help = (
        "Delete audit events older than --older-than days, leaving a checkpoint (and an audit.purged event) "
        "so that audit_verify still passes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")

    def handle(self, *args, older_than: int, **options) -> None:
        if older_than < 1:
            raise CommandError("--older-than must be at least 1 day.")
        checkpoint = audit_purge(before=timezone.now() - timedelta(days=older_than))
        if checkpoint is None:
            self.stdout.write(f"No audit event is older than {older_than} days.")
            return
        self.stdout.write(
            f"Purged {checkpoint.count} audit events up to #{checkpoint.last_id}; "
            f"the chain continues from checkpoint {checkpoint.pk}."
        )
