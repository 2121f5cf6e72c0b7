from django.core.management.base import BaseCommand, CommandError

from workflows.services.credentials import ENCRYPTED_COLUMNS, Rotation, credentials_rotate

UNREADABLE = (
    "{count} secret(s) cannot be decrypted with any key in CREDENTIALS_KEY and were left unchanged: {rows}. "
    "Add the key they were encrypted with to CREDENTIALS_KEY (after the first) and run this again, or delete them."
)


class Command(BaseCommand):
    help = (
        "Re-encrypt every credential and webhook secret with the first key of CREDENTIALS_KEY. Rotate a key by "
        "putting the new key first (CREDENTIALS_KEY=new,old), running this, then dropping the old key."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Check and count; write nothing.")
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction (default 500).")

    def handle(self, *args, dry_run: bool, batch_size: int, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        result = credentials_rotate(batch_size=batch_size, dry_run=dry_run)
        self.stdout.write(_summary(result, dry_run=dry_run))
        if result.unreadable:
            raise CommandError(UNREADABLE.format(count=len(result.unreadable), rows=", ".join(result.unreadable)))


def _summary(result: Rotation, *, dry_run: bool) -> str:
    done = "to re-encrypt" if dry_run else "re-encrypted"
    counts = "; ".join(
        f"{label}: {result.rotated[label]} {done}, {result.current[label]} already on the first key"
        for _, _, label, _ in ENCRYPTED_COLUMNS
    )
    return f"Dry run, nothing was written. {counts}." if dry_run else f"{counts}."
