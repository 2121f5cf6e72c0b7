"""Every change to channels, deliveries and inbox notifications. Tasks, the API and the admin call these.

A delivery is sent by `delivery_send`: claimed (queued/retrying → sending, committed), sent outside any
transaction, then recorded as sent, retrying (backoff with jitter, honouring Retry-After) or dead.
`deliveries_dispatch` (beat) sends what is due and recovers deliveries whose worker died mid-send."""

import logging
import random
import uuid
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.access import Role, ensure_role
from accounts.models import User
from analytics.services.recording import events_record_after_commit
from audit.services import AnyRequest, audit_record
from core.problems import Conflict
from notifications.channels.base import DeliveryError, Message, Sent
from notifications.channels.registry import CHANNEL_KINDS, channel_kind_get
from notifications.models import Channel, Delivery, Rule, Template
from notifications.services.templates import render
from workflows.credentials import credential_value
from workflows.engine.errors import PermanentError

logger = logging.getLogger(__name__)
Status = Delivery.Status

SEND_TASK = "notifications.tasks.delivery_send"
BATCH_TASK = "notifications.tasks.deliveries_send"
QUEUE = "notifications"
CHANNEL_DISABLED = "The channel is disabled."
CHANNEL_DELETED = "The channel was deleted."
NOT_RESENDABLE = "Only a dead or failed delivery can be sent again (this one is {status})."
INTERRUPTED = "The worker stopped while sending; the message may have been delivered, so it was not sent again."
NO_SUCH_CHANNEL_NAMED = "No notification channel named {name!r} in the workspace."
NO_SUCH_TEMPLATE_NAMED = "No notification template named {name!r} in the workspace."
TEST_SUBJECT = "Test notification"
TEST_BODY = "This is a test message from Document Workflow Chain: the channel {name!r} works."


def _new_key() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _enqueue_on_commit(delivery_id, *, countdown: float = 0) -> None:
    transaction.on_commit(
        lambda: current_app.send_task(SEND_TASK, (str(delivery_id),), queue=QUEUE, countdown=countdown or None)
    )


def _new_delivery(
    *,
    channel: Channel | None,
    direct_kind: str = "",
    rule: Rule | None = None,
    subject: str = "",
    body: str = "",
    link: str = "",
    level: str = "info",
    payload: dict | None = None,
    recipient: User | None = None,
    send_at=None,
    idempotency_key: str | None = None,
    max_attempts: int | None = None,
    actor: User | None = None,
) -> Delivery:
    """An unsaved delivery: queued, or scheduled for a future `send_at`. ValidationError for a disabled
    channel."""
    if channel is not None and not channel.enabled:
        raise ValidationError({"channel": [CHANNEL_DISABLED]})
    scheduled = send_at is not None and send_at > timezone.now()
    return Delivery(
        workspace_id=channel.workspace_id if channel is not None else rule.workspace_id,
        channel=channel,
        direct_kind=direct_kind,
        rule=rule,
        recipient=recipient,
        subject=subject,
        body=body,
        link=link,
        level=level,
        payload=payload or {},
        status=Status.SCHEDULED if scheduled else Status.QUEUED,
        send_at=send_at,
        max_attempts=max_attempts or settings.DWC_NOTIFICATIONS_MAX_ATTEMPTS,
        idempotency_key=idempotency_key or _new_key(),
        created_by=actor,
    )


def delivery_create(*, send_now: bool = False, **message) -> Delivery:
    """A delivery of one message through `channel`, or to `recipient` by a kind of their own
    (`direct_kind`: email, web_push); queued (sent once the transaction commits) or, with a future
    `send_at`, scheduled (sent by deliveries_dispatch when due). With `send_now` nothing is queued: the
    caller sends it with delivery_send in its own thread. No permission check: callers (the rules, the
    notify node, channel_test) decide who may send. A repeated `idempotency_key` returns the first
    delivery instead of a second one. Raises ValidationError for a disabled channel.

    The keyword arguments: channel, direct_kind, rule, subject, body, link, level, payload, recipient,
    send_at, idempotency_key, max_attempts, actor."""
    delivery = _new_delivery(**message)
    if message.get("idempotency_key"):
        rows = Delivery.objects.filter(workspace_id=delivery.workspace_id, idempotency_key=delivery.idempotency_key)
        if (existing := rows.first()) is not None:
            return existing
    with transaction.atomic():
        delivery.save(force_insert=True)
        if delivery.status == Status.QUEUED and not send_now:
            _enqueue_on_commit(delivery.pk)
    return delivery


def deliveries_create(messages: list[dict]) -> list[Delivery]:
    """Many deliveries at once (a rule's fan-out, a bulk send), each dict taking delivery_create's
    keyword arguments: one insert, and once the transaction commits their messages go in batches of
    DWC_NOTIFICATIONS_SEND_BATCH, each sent by one worker in one claim and one record (deliveries_send).
    Messages whose idempotency key was used already are not made again; returns the deliveries made."""
    deliveries = [_new_delivery(**message) for message in messages]
    keys = [delivery.idempotency_key for delivery in deliveries]
    used = set(Delivery.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", flat=True))
    deliveries = [delivery for delivery in deliveries if delivery.idempotency_key not in used]
    with transaction.atomic():
        Delivery.objects.bulk_create(deliveries)
        queued = [str(delivery.pk) for delivery in deliveries if delivery.status == Status.QUEUED]
        size = settings.DWC_NOTIFICATIONS_SEND_BATCH
        for start in range(0, len(queued), size):
            batch = queued[start : start + size]
            transaction.on_commit(lambda batch=batch: current_app.send_task(BATCH_TASK, (batch,), queue=QUEUE))
    return deliveries


def _claim(delivery_id) -> list[Delivery]:
    """Mark a due queued or retrying delivery `sending` and count the attempt, committed before the
    call: a worker that dies mid-send leaves `sending` behind for the recovery. [] if not due or not
    ours (sent already, claimed by another worker, a message that came early)."""
    # One conditional UPDATE, its own transaction: a second message for the delivery waits for the
    # row, finds it `sending` and claims nothing (a locked read, a save and a commit took four trips).
    if not _claimable().filter(pk=delivery_id).update(**_claim_fields()):
        return []
    return list(Delivery.objects.select_related("channel", "recipient").filter(pk=delivery_id))


def _claim_many(delivery_ids: list) -> list[Delivery]:
    """_claim for a batch: those of `delivery_ids` that are due and not held by another worker."""
    fields = _claim_fields()
    with transaction.atomic():
        rows = _claimable().select_for_update(skip_locked=True, of=("self",)).filter(pk__in=delivery_ids)
        ids = list(rows.values_list("pk", flat=True))
        Delivery.objects.filter(pk__in=ids).update(**fields)
    claimed = Delivery.objects.select_related("channel", "recipient").in_bulk(ids) if ids else {}
    # In the order they were made (the batch's order), as their messages would have been sent.
    return [claimed[pk] for pk in map(uuid.UUID, map(str, delivery_ids)) if pk in claimed]


def _claimable():
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())
    return Delivery.objects.filter(due, status__in=[Status.QUEUED, Status.RETRYING])


def _claim_fields() -> dict:
    return {"status": Status.SENDING, "attempts": F("attempts") + 1, "claimed_at": timezone.now()}


def _backoff(attempt: int, retry_after: float | None) -> float:
    """Seconds before attempt `attempt + 1`: a doubling delay, jittered over its upper half, or
    the receiver's Retry-After when longer; never more than DWC_NOTIFICATIONS_MAX_BACKOFF_SECONDS."""
    ceiling = settings.DWC_NOTIFICATIONS_BACKOFF_SECONDS * 2 ** (attempt - 1)
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, settings.DWC_NOTIFICATIONS_MAX_BACKOFF_SECONDS)


def _link_for(delivery: Delivery) -> str:
    """The delivery's link as its receiver can follow it: a path of ours becomes an address on
    DWC_PUBLIC_URL, except in the inbox, which is on our site already."""
    kind = delivery.direct_kind or (delivery.channel.kind if delivery.channel else "")
    if delivery.link.startswith("/") and not delivery.link.startswith("//") and kind != Channel.Kind.IN_APP:
        return settings.DWC_PUBLIC_URL.rstrip("/") + delivery.link
    return delivery.link


def delivery_message(delivery: Delivery) -> Message:
    """What the channel is given to send: the delivery as plain data."""
    return Message(
        delivery_id=str(delivery.pk),
        workspace_id=str(delivery.workspace_id),
        idempotency_key=delivery.idempotency_key,
        subject=delivery.subject,
        body=delivery.body,
        link=_link_for(delivery),
        level=delivery.level,
        payload=delivery.payload,
        recipient_id=delivery.recipient_id,
        recipient_email=delivery.recipient.email if delivery.recipient else "",
    )


def _attempt(delivery: Delivery, secrets: dict | None = None) -> Sent:
    """Send the delivery once through its channel (or its direct kind); DeliveryError for every way it
    can fail. `secrets` keeps the credentials read for a batch (one lookup per channel)."""
    if delivery.direct_kind:
        return channel_kind_get(delivery.direct_kind).send({}, None, delivery_message(delivery))
    channel = delivery.channel
    if channel is None:
        raise DeliveryError(CHANNEL_DELETED, permanent=True)
    if not channel.enabled:
        raise DeliveryError(CHANNEL_DISABLED, permanent=True)
    kind = channel_kind_get(channel.kind)
    secret = None
    if channel.credential:
        secrets = {} if secrets is None else secrets
        if channel.pk not in secrets:
            try:
                secrets[channel.pk] = credential_value(
                    workspace_id=channel.workspace_id, name=channel.credential, kinds=kind.credential_kinds
                )
            except PermanentError as error:
                secrets[channel.pk] = DeliveryError(error.message, permanent=True)
        if isinstance(secret := secrets[channel.pk], DeliveryError):
            raise secret
    return kind.send(channel.config, secret, delivery_message(delivery))


def _outcome(delivery: Delivery, *, sent: Sent | None, error: DeliveryError | None, now) -> dict:
    """The fields an attempt's outcome sets."""
    if error is None:
        return {
            "status": Status.SENT,
            "sent_at": now,
            "error": "",
            "response_code": sent.response_code,
            "provider_id": sent.provider_id[:500],
            "next_attempt_at": None,
        }
    outcome = {"response_code": error.response_code, "error": error.message}
    if error.permanent or delivery.attempts >= delivery.max_attempts:
        return {**outcome, "status": Status.DEAD, "next_attempt_at": None}
    delay = _backoff(delivery.attempts, error.retry_after)
    return {**outcome, "status": Status.RETRYING, "next_attempt_at": now + timedelta(seconds=delay)}


def _record(delivery: Delivery, *, sent: Sent | None, error: DeliveryError | None) -> Delivery:
    """Write an attempt's outcome, unless the recovery took the delivery meanwhile (its lease ran out)."""
    now = timezone.now()
    outcome = _outcome(delivery, sent=sent, error=error, now=now)
    with transaction.atomic():
        # One conditional UPDATE, not a locked read and a save: PostgreSQL checks the condition again
        # on the locked row, so an attempt the recovery took (no longer `sending`, or counted anew)
        # writes nothing.
        ours = Delivery.objects.filter(pk=delivery.pk, status=Status.SENDING, attempts=delivery.attempts)
        if not ours.update(**outcome):
            return Delivery.objects.filter(pk=delivery.pk).select_related("channel").first() or delivery
        for name, value in outcome.items():
            setattr(delivery, name, value)
        if delivery.channel_id is not None:
            Channel.objects.filter(pk=delivery.channel_id).update(last_status=delivery.status, last_delivery_at=now)
        if delivery.status == Status.RETRYING:
            _enqueue_on_commit(delivery.pk, countdown=(delivery.next_attempt_at - now).total_seconds())
    _counted([delivery])
    logger.info(
        "notification delivery attempt",
        extra={"delivery": str(delivery.pk), "status": delivery.status, "attempt": delivery.attempts},
    )
    return delivery


def _record_batch(results: list[tuple[Delivery, Sent | None, DeliveryError | None]]) -> None:
    """Write a batch's outcomes in one transaction: the rows still `sending` under their attempt (the
    recovery may have taken some: their lease ran out) are locked, then updated in one statement."""
    now = timezone.now()
    outcomes = {delivery.pk: _outcome(delivery, sent=sent, error=error, now=now) for delivery, sent, error in results}
    with transaction.atomic():
        held = Delivery.objects.select_for_update(of=("self",)).filter(pk__in=list(outcomes), status=Status.SENDING)
        attempts = dict(held.values_list("pk", "attempts"))
        ours = [delivery for delivery, _, _ in results if attempts.get(delivery.pk) == delivery.attempts]
        # One UPDATE per distinct outcome (all the sent ones of a batch share theirs, as a rule): Django's
        # bulk_update builds a CASE per field and row, which cost more than the sends.
        groups: dict[tuple, list] = {}
        for delivery in ours:
            outcome = outcomes[delivery.pk]
            groups.setdefault(tuple(sorted(outcome.items())), []).append(delivery.pk)
            for name, value in outcome.items():
                setattr(delivery, name, value)
        for outcome, ids in groups.items():
            Delivery.objects.filter(pk__in=ids).update(**dict(outcome))
        for channel_id in {delivery.channel_id for delivery in ours if delivery.channel_id}:
            last = [delivery for delivery in ours if delivery.channel_id == channel_id][-1]
            Channel.objects.filter(pk=channel_id).update(last_status=last.status, last_delivery_at=now)
        for delivery in ours:
            if delivery.status == Status.RETRYING:
                _enqueue_on_commit(delivery.pk, countdown=(delivery.next_attempt_at - now).total_seconds())
    _counted(ours)
    logger.info("notification deliveries sent in a batch", extra={"deliveries": len(ours)})


def _counted(deliveries: list[Delivery]) -> None:
    """Analytics count the deliveries that reached their end: sent, or given up on."""
    ended = {Status.SENT: "notification.delivered", Status.DEAD: "notification.failed"}
    events_record_after_commit(
        [
            {
                "type": ended[delivery.status],
                "subject": f"{delivery.pk}",
                "workspace": delivery.workspace_id,
                "workflow": None,
                "ts": delivery.sent_at or timezone.now(),
                "data": {"channel": delivery.direct_kind or (delivery.channel.kind if delivery.channel else "")},
            }
            for delivery in deliveries
            if delivery.status in ended
        ]
    )


def _attempted(delivery: Delivery, secrets: dict) -> tuple[Delivery, Sent | None, DeliveryError | None]:
    try:
        return delivery, _attempt(delivery, secrets), None
    except DeliveryError as error:
        return delivery, None, error


def delivery_send(*, delivery_id) -> Delivery | None:
    """Send a queued or retrying delivery that is due, and record the outcome. Idempotent: a repeated or
    early message does nothing. Returns the delivery as recorded, or None when there was nothing to do."""
    claimed = _claim(delivery_id)
    if not claimed:
        return None
    delivery, sent, error = _attempted(claimed[0], {})
    return _record(delivery, sent=sent, error=error)


def deliveries_send(*, delivery_ids: list) -> int:
    """Send a batch made by deliveries_create: claimed together, sent one after another (a channel's
    credential read once), recorded together. Idempotent as delivery_send. Returns how many were sent
    (attempted)."""
    claimed = _claim_many(delivery_ids)
    if claimed:
        secrets: dict = {}
        _record_batch([_attempted(delivery, secrets) for delivery in claimed])
    return len(claimed)


def deliveries_recover() -> int:
    """Deliveries still `sending` a lease after their attempt began lost their worker mid-send. Where the
    channel honours the idempotency key they are sent again under it; otherwise they are `failed` with
    `may_have_been_delivered`, never silently re-sent. Returns how many were recovered."""
    cutoff = timezone.now() - timedelta(seconds=settings.DWC_NOTIFICATIONS_LEASE_SECONDS)
    recovered = 0
    with transaction.atomic():
        stale = Delivery.objects.select_for_update(skip_locked=True, of=("self",)).select_related("channel")
        for delivery in stale.filter(status=Status.SENDING, claimed_at__lt=cutoff):
            kind_name = delivery.direct_kind or (delivery.channel.kind if delivery.channel else "")
            kind = CHANNEL_KINDS.get(kind_name)
            if kind is not None and kind.accepts_idempotency_key and delivery.attempts < delivery.max_attempts:
                delivery.status, delivery.next_attempt_at = Status.RETRYING, None
                _enqueue_on_commit(delivery.pk)
            else:
                delivery.status, delivery.may_have_been_delivered = Status.FAILED, True
                delivery.error = INTERRUPTED
            delivery.save(update_fields=["status", "next_attempt_at", "may_have_been_delivered", "error"])
            recovered += 1
    return recovered


def deliveries_dispatch() -> dict[str, int]:
    """Beat's round: recover deliveries whose worker died, queue scheduled ones that are due, and send
    again the retries that are due (their countdown message may be lost; a duplicate does nothing)."""
    now = timezone.now()
    recovered = deliveries_recover()
    with transaction.atomic():
        due = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=Status.SCHEDULED, send_at__lte=now)
            .values_list("pk", flat=True)
        )
        Delivery.objects.filter(pk__in=due).update(status=Status.QUEUED)
        retries = list(
            Delivery.objects.filter(status=Status.RETRYING, next_attempt_at__lte=now).values_list("pk", flat=True)
        )
        # Queued for a while without being claimed: its message was lost (a broker restart).
        stuck = list(
            Delivery.objects.filter(
                status=Status.QUEUED, created_at__lt=now - timedelta(seconds=settings.DWC_NOTIFICATIONS_LEASE_SECONDS)
            ).values_list("pk", flat=True)
        )
        for delivery_id in [*due, *retries, *stuck]:
            _enqueue_on_commit(delivery_id)
    return {"recovered": recovered, "scheduled": len(due), "retries": len(retries), "requeued": len(stuck)}


def delivery_resend(*, delivery: Delivery, actor: User | None, request: AnyRequest | None = None) -> Delivery:
    """Send a dead or failed delivery again: a new series of attempts under the same idempotency key,
    so a receiver that honours it drops a copy it already has. Admins and owners; Conflict (409) for a
    delivery in another state."""
    if actor is not None:
        ensure_role(actor, delivery.workspace, Role.ADMIN)
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update(of=("self",)).select_related("workspace").get(pk=delivery.pk)
        if delivery.status not in (Status.DEAD, Status.FAILED):
            raise Conflict(NOT_RESENDABLE.format(status=delivery.status))
        before = delivery.status
        delivery.status, delivery.attempts, delivery.next_attempt_at = Status.QUEUED, 0, None
        delivery.error, delivery.may_have_been_delivered = "", False
        delivery.save(update_fields=["status", "attempts", "next_attempt_at", "error", "may_have_been_delivered"])
        audit_record(
            action="notification_delivery.resent",
            actor=actor,
            workspace=delivery.workspace,
            target=delivery,
            changes={"status": [before, Status.QUEUED]},
            request=request,
        )
        _enqueue_on_commit(delivery.pk)
    return delivery


def channel_test(*, channel: Channel, actor: User, request: AnyRequest | None = None) -> Delivery:
    """Send a test message through the channel now, in the caller's thread, once (no retries), and
    return the delivery as recorded: sent, or dead with the receiver's answer. Admins and owners;
    ValidationError for a disabled channel."""
    ensure_role(actor, channel.workspace, Role.ADMIN)
    recipient = actor if channel.kind in (Channel.Kind.IN_APP, Channel.Kind.EMAIL, Channel.Kind.WEB_PUSH) else None
    with transaction.atomic():
        delivery = delivery_create(
            channel=channel,
            recipient=recipient,
            subject=TEST_SUBJECT,
            body=TEST_BODY.format(name=channel.name),
            payload={"type": "notification.test"},
            max_attempts=1,
            actor=actor,
            send_now=True,
        )
        audit_record(
            action="notification_channel.tested",
            actor=actor,
            workspace=channel.workspace,
            target=channel,
            changes={"delivery": [None, str(delivery.pk)]},
            request=request,
        )
    delivery_send(delivery_id=delivery.pk)
    return Delivery.objects.select_related("channel").get(pk=delivery.pk)


def message_send(
    *,
    workspace_id,
    channel_name: str,
    subject: str = "",
    body: str = "",
    link: str = "",
    level: str = "info",
    template_name: str = "",
    event: dict | None = None,
    idempotency_key: str,
) -> Delivery:
    """Send one message through the workspace's channel called `channel_name` now, in the caller's
    thread, and return the delivery as recorded (sent, retrying on its own, or dead). With
    `template_name` the workspace's template is rendered with `event`; otherwise subject and body are
    sent as given. Sent at most once per `idempotency_key`: asking again returns the first delivery.
    For the notify node. Raises PermanentError for a missing or disabled channel or template, or a
    template that fails to render."""
    channel = Channel.objects.filter(workspace_id=workspace_id, name=channel_name).first()
    if channel is None:
        raise PermanentError(NO_SUCH_CHANNEL_NAMED.format(name=channel_name))
    if not channel.enabled:
        raise PermanentError(f"{CHANNEL_DISABLED} ({channel_name!r})")
    formats: dict = {}
    if template_name:
        template = Template.objects.filter(workspace_id=workspace_id, name=template_name).first()
        if template is None:
            raise PermanentError(NO_SUCH_TEMPLATE_NAMED.format(name=template_name))
        rendered = render(template, event or {})
        subject, body, formats = rendered.subject, rendered.body, rendered.formats
    delivery = delivery_create(
        channel=channel,
        subject=subject,
        body=body,
        link=link,
        level=level,
        payload={"type": (event or {}).get("type", "message"), "formats": formats},
        idempotency_key=idempotency_key,
        send_now=True,
    )
    return delivery_send(delivery_id=delivery.pk) or Delivery.objects.get(pk=delivery.pk)
