from django.core.management.base import BaseCommand

from audit.chain import chain_anchor


class Command(BaseCommand):
    help = (
        "Print the audit chain's head as <event id>:<hash>. Keep it outside this database; "
        "`audit_verify --anchor` then shows whether the trail was rewritten since."
    )

    def handle(self, *args, **options) -> None:
        anchor = chain_anchor()
        self.stdout.write(str(anchor) if anchor else "The audit trail is empty: nothing to anchor yet.")
