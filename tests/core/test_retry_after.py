"""core.retry_after: the one reader of Retry-After headers (HTTP nodes, providers, notification channels)."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from core.retry_after import retry_after_seconds

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "seconds"), [("2", 2), (" 120 ", 120), ("0", 0), ("1.5", 1.5)])
def test_delay_seconds_are_read_as_they_are(value, seconds):
    assert retry_after_seconds(value, now=NOW) == seconds


def test_an_http_date_is_read_as_the_seconds_until_it():
    when = format_datetime(NOW + timedelta(seconds=90), usegmt=True)  # "Thu, 01 Jan 2026 12:01:30 GMT"
    assert retry_after_seconds(when, now=NOW) == 90


def test_an_http_date_already_past_means_now():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW) == 0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "-5", "-0.5", "nan", "inf", "Thursday noon", "12 monkeys"])
def test_absent_negative_or_unreadable_values_are_ignored(value):
    assert retry_after_seconds(value, now=NOW) is None
