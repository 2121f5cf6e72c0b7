from django.core.management.base import BaseCommand

from accounts.lockout import lockout_lift


class Command(BaseCommand):
    help = "Lift the login lockout of an account (from one address with --ip, else from every address)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("email")
        parser.add_argument("--ip", help="Only the lock from this client address.")

    def handle(self, *args, email: str, ip: str | None, **options) -> None:
        lifted = lockout_lift(email=email, ip=ip)
        where = f" from {ip}" if ip else ""
        if lifted:
            self.stdout.write(f"Lifted {lifted} lock(s) of {email}{where}.")
        else:
            self.stdout.write(f"{email} is not locked out{where}.")
