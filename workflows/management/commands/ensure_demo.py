from django.core.management.base import BaseCommand, CommandError

from accounts.access import personal_workspace
from accounts.models import User
from workflows.demo import demo_workflow_ensure


class Command(BaseCommand):
    help = 'Create the demo workflow "AI Blog Series" in the demo user\'s personal workspace if it is missing.'

    def add_arguments(self, parser):
        parser.add_argument("--email", help="The demo user (default: the first superuser).")

    def handle(self, *args, email=None, **options):
        users = User.objects.filter(email__iexact=email) if email else User.objects.filter(is_superuser=True)
        user = users.order_by("date_joined").first()
        if user is None:
            raise CommandError(f"No user {email}." if email else "No superuser yet; run ensure_admin first.")
        workspace = personal_workspace(user)
        if workspace is None:
            raise CommandError(f"{user.email} has no personal workspace.")
        workflow, created = demo_workflow_ensure(owner=user, workspace=workspace)
        verb = "Created" if created else "Found"
        self.stdout.write(f"{verb} demo workflow {workflow.name!r} ({workflow.pk}) for {user.email}.")
