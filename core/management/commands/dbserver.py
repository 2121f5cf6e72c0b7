import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.embedded_db.server import EmbeddedDatabaseError, EmbeddedServer


class Command(BaseCommand):
    help = (
        "The embedded PostgreSQL server of var/ (used when DATABASE_URL is not set): `status` prints "
        "whether it runs, its pid, data and socket directories and the processes using it; `stop` stops "
        "it (e.g. one left running after `serve` was killed with SIGKILL)."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "stop"])

    def handle(self, *args, action: str, **options):
        database = settings.DATABASES["default"]
        if database["ENGINE"] != "config.embedded_db":
            raise CommandError("DATABASE_URL is set: this process uses that server, not the embedded one.")
        server = EmbeddedServer(Path(database["VAR_DIR"]))
        if action == "stop":
            try:
                server.stop()
            except EmbeddedDatabaseError as error:
                raise CommandError(str(error)) from None
        self.stdout.write(json.dumps(server.status(), indent=2))
