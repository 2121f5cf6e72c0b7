from io import StringIO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from config import embedded


class Command(BaseCommand):
    help = (
        "What `make run` runs, in one process: apply migrations, create the admin user and the demo "
        "workflow when missing, then serve (see `serve`). One process instead of four saves a Django "
        "start-up each (about 2 s apiece on a small machine)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.HOST)
        parser.add_argument("--port", type=int, default=settings.PORT)

    def handle(self, *args, host: str, port: int, **options):
        if settings.DWC_MODE == "embedded":
            # Before the migrations: a second `make run` of this checkout stops here, changing nothing.
            embedded.claim_checkout(url=f"http://{host}:{port}/")
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database ready: every migration applied.")
        # The admin's password and the URL to open are the last lines before the server's logs.
        admin_output = StringIO()
        call_command("ensure_admin", stdout=admin_output)
        call_command("ensure_demo", stdout=self.stdout)
        self.stdout.write(admin_output.getvalue().rstrip("\n"))
        self.stdout.write(self.style.SUCCESS(f"Open http://{host}:{port}/dashboard/ (the API is at /api/v3/)"))
        self.stdout.flush()
        call_command("serve", host=host, port=port)
