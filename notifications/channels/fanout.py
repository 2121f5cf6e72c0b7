"""One message to several recipients of a channel (SMS numbers, browsers), one request each.

None of these receivers takes an idempotency key, so a retry that sent to every recipient again would
text the numbers that had already taken the message. Each recipient that took it is remembered in the
cache under the delivery's idempotency key; a retry (or a resend) sends only to the others. Should the
cache lose the mark (or be unreachable), the recipient gets the message twice: the same as without
it, never a loss.
"""

import hashlib
from collections.abc import Callable, Iterable
from contextlib import suppress

import redis
from django.core.cache import cache

from notifications.channels.base import DeliveryError, Message, Sent

# Long enough for the slowest series of retries and a manual resend days later.
REMEMBERED_SECONDS = 14 * 24 * 3600
ALREADY_SENT = "every recipient had taken the message"
NOBODY_REACHED = "No recipient is left: {reason}"
SOME_REFUSED = "{sent} of {total} took it; {error}"


def _key(message: Message, recipient: str) -> str:
    digest = hashlib.sha256(recipient.encode()).hexdigest()[:32]
    return f"notifications.sent.{message.idempotency_key}.{digest}"


def _took_it(message: Message, recipients: list[str]) -> set[str]:
    keys = {_key(message, recipient): recipient for recipient in recipients}
    try:
        return {keys[key] for key in cache.get_many(list(keys))}
    except (redis.RedisError, OSError):
        return set()


def _remember(message: Message, recipient: str) -> None:
    with suppress(redis.RedisError, OSError):
        cache.set(_key(message, recipient), 1, REMEMBERED_SECONDS)


def send_to_each(
    message: Message,
    recipients: Iterable[str],
    send_one: Callable[[str], Sent | None],
    *,
    gone_reason: str = "",
) -> Sent:
    """Call `send_one` for each recipient not yet marked as having taken this message.

    `send_one` returns Sent, None for a recipient that no longer exists (a browser unsubscribed), or
    raises DeliveryError. Afterwards: any transient error is raised (a retry sends to the rest only);
    permanent errors are raised when nobody at all took the message, else noted in the provider id.
    """
    recipients = list(dict.fromkeys(recipients))
    took = _took_it(message, recipients)
    pending = [recipient for recipient in recipients if recipient not in took]
    sent: list[Sent] = []
    transient: list[DeliveryError] = []
    permanent: list[DeliveryError] = []
    for recipient in pending:
        try:
            result = send_one(recipient)
        except DeliveryError as error:
            (permanent if error.permanent else transient).append(error)
            continue
        if result is not None:
            _remember(message, recipient)
            sent.append(result)
    if transient:
        first = transient[0]
        retry_after = max((error.retry_after or 0 for error in transient), default=0) or None
        raise DeliveryError(first.message, permanent=False, retry_after=retry_after, response_code=first.response_code)
    took_earlier = len(recipients) - len(pending)
    if not sent and not took_earlier:
        if permanent:
            raise permanent[0]
        raise DeliveryError(NOBODY_REACHED.format(reason=gone_reason), permanent=True)
    if not pending:
        return Sent(provider_id=ALREADY_SENT)
    ids = ", ".join(result.provider_id for result in sent if result.provider_id)
    if permanent:
        ids = SOME_REFUSED.format(sent=len(sent) + took_earlier, total=len(recipients), error=permanent[0].message)
    return Sent(response_code=sent[-1].response_code if sent else None, provider_id=ids)
