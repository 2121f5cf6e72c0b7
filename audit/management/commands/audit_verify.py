from django.core.management.base import BaseCommand, CommandError

from audit.chain import chain_verify


class Command(BaseCommand):
    help = (
        "Recompute the audit trail's hash chain from its first event (or from the latest purge checkpoint). "
        "Exits 1 naming the first event that does not verify."
    )

    def handle(self, *args, **options) -> None:
        result = chain_verify()
        if not result.ok:
            raise CommandError(
                f"Audit chain broken at event #{result.broken_id}: {result.reason} "
                f"({result.count} events from #{result.start_id} verified before it)."
            )
        self.stdout.write(f"Verified {result.count} audit events (#{result.start_id} onwards): the chain is intact.")
