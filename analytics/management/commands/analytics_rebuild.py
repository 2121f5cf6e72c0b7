from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from analytics.services.recording import rollups_rebuild

SINCE_INVALID = "--since {value!r} is not a date or an ISO 8601 date and time."


class Command(BaseCommand):
    help = (
        "Make the analytics rollups again from the analytics events, from the start of --since's day (default: "
        "7 days ago), after an upgrade or to repair them. Events older than their retention are gone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="A date or an ISO 8601 date and time (UTC without an offset).")

    def handle(self, *args, since=None, **options):
        moment = timezone.now() - timedelta(days=7) if since is None else _moment(since)
        count = rollups_rebuild(since=moment)
        self.stdout.write(f"Rolled up {count} event(s) since {moment:%Y-%m-%d}.")


def _moment(value: str) -> datetime:
    try:
        moment = parse_datetime(value)
        if moment is None and (day := parse_date(value)) is not None:
            moment = datetime(day.year, day.month, day.day)
    except ValueError:  # well formed, but no such day or time
        moment = None
    if moment is None:
        raise CommandError(SINCE_INVALID.format(value=value))
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)
