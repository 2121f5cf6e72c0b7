import os
import secrets

from django.core.management.base import BaseCommand

from accounts.services import superuser_ensure


class Command(BaseCommand):
    help = (
        "Create a superuser if the database has no user yet. Credentials come from DWC_ADMIN_EMAIL and "
        "DWC_ADMIN_PASSWORD, or are generated and printed once."
    )

    def handle(self, *args, **options):
        email = os.environ.get("DWC_ADMIN_EMAIL", "admin@example.com")
        given_password = os.environ.get("DWC_ADMIN_PASSWORD")
        password = given_password or secrets.token_urlsafe(12)
        if not superuser_ensure(email=email, password=password):
            self.stdout.write("Users exist already; no admin created.")
            return
        shown = "(from DWC_ADMIN_PASSWORD)" if given_password else password
        self.stdout.write(self.style.SUCCESS(f"Created admin user {email} with password {shown}"))
