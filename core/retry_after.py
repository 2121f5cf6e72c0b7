"""Reading a Retry-After header (RFC 9110 §10.2.3): how long the other side asked us to wait.

One reader for every caller: the HTTP nodes, the language-model providers, notification channels.
"""

import email.utils
import math
from datetime import UTC, datetime


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait, from delay-seconds or an HTTP date; None if absent, negative or unreadable.

    Fractional seconds are accepted (some servers send them). A date already past reads as 0: the
    server is ready now.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value, now or datetime.now(UTC))
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _seconds_until(value: str, now: datetime) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
