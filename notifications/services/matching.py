"""The rules at work: an event (notifications.services.events) is matched against the workspace's enabled
rules, and each rule that takes it records a Match and either notifies at once, holds the event for a
digest, or counts it as throttled. Runs in a task on the `notifications` queue, never in a request.

A rule's row is locked while it acts, so the throttle counts are exact when events of one rule arrive at
once on several workers, and a Match is unique per rule and event id, so an event handed on twice
(a task redelivered after a worker died) notifies once. Deliveries are created in the same transaction
as their Match: both or neither.

Who is notified: each of the rule's enabled channels (one delivery each), and the rule's members and the
workspace's members holding its roles, by the kinds in `member_kinds`: `in_app` (one delivery for all
of them, written at once: their inboxes are our own tables), `email` and `web_push` (one delivery per
person, queued). A person's preferences apply to the latter: a muted event type or kind is skipped, and
in quiet hours an email or push waits (`send_at`) until they end; the inbox still records.
"""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Membership, User
from notifications.channels.in_app import inboxes_add
from notifications.models import Channel, Delivery, Match, Preference, PushSubscription, Rule
from notifications.services.deliveries import deliveries_create
from notifications.services.templates import Rendered, render, uses_recipient
from workflows.engine.expressions.errors import ExpressionError

logger = logging.getLogger(__name__)
Outcome = Match.Outcome

LEVELS = {
    "run.failed": "error",
    "run.timed_out": "error",
    "run.succeeded": "success",
    "run.waiting": "warning",
    "webhook.rejected": "warning",
    "credential.expiring": "warning",
    "schedule.missed": "warning",
    "budget.threshold": "warning",
    "budget.exceeded": "error",
    "insight.opened": "warning",
}
# A run that timed out failed: a rule on `run.failed` takes it as well.
ALSO_TAKEN_BY = {"run.timed_out": ("run.failed",)}
TEMPLATE_FAILED = "(The rule's template {name!r} failed: {error}; this is the default message.)"
DIGEST_SUBJECT = "{count} notifications from {rule}"
PERSON_KINDS = (Channel.Kind.IN_APP, Channel.Kind.EMAIL, Channel.Kind.WEB_PUSH)


def events_match(events: list[dict]) -> None:
    """Act on each event with every enabled rule of its workspace that takes it."""
    for event in events:
        for rule in _rules_taking(event):
            rule_act(rule, event)


def _rules_taking(event: dict) -> list[Rule]:
    workflow = event.get("workflow") or {}
    types = [event["type"], *ALSO_TAKEN_BY.get(event["type"], ())]
    rules = Rule.objects.filter(workspace_id=event["workspace"]["id"], enabled=True, events__overlap=types)
    if workflow.get("id"):
        rules = rules.filter(Q(workflow_id__isnull=True) | Q(workflow_id=workflow["id"]))
    else:
        rules = rules.filter(workflow_id__isnull=True)
    tags = set(workflow.get("tags") or [])
    return [rule for rule in rules.select_related("template") if not rule.tags or tags & set(rule.tags)]


def rule_act(rule: Rule, event: dict) -> Match | None:
    """Record the event for the rule and notify, hold for the digest, or throttle; None if the rule
    acted on this event before."""
    now = timezone.now()
    with transaction.atomic():
        rule = Rule.objects.select_for_update(of=("self",)).select_related("template").get(pk=rule.pk)
        if Match.objects.filter(rule=rule, event_id=event["id"]).exists():
            return None
        subject = str(event.get("subject", ""))
        match = Match(rule=rule, event_id=event["id"], event_type=event["type"], subject=subject, event=event)
        if rule.digest_window_seconds:
            open_digest = Match.objects.filter(rule=rule, outcome=Outcome.DIGEST_PENDING).order_by("digest_due_at")
            due = open_digest.values_list("digest_due_at", flat=True).first()
            match.outcome = Outcome.DIGEST_PENDING
            match.digest_due_at = due or now + timedelta(seconds=rule.digest_window_seconds)
        elif _throttled(rule, match.subject, now):
            match.outcome = Outcome.THROTTLED
        else:
            match.outcome = Outcome.NOTIFIED
            _notify(rule, event, event_types={event["type"]}, key=f"rule:{rule.pk}:{event['id']}", now=now)
        match.save()
    return match


def _throttled(rule: Rule, subject: str, now: datetime) -> bool:
    since = now - timedelta(seconds=rule.throttle_window_seconds)
    recent = Match.objects.filter(rule=rule, subject=subject, outcome=Outcome.NOTIFIED, created_at__gte=since)
    return recent.count() >= rule.throttle_count


def _rendered(rule: Rule, event: dict, recipient: User | None = None) -> Rendered:
    """The rule's message for the event; if its template fails at render time, the default message
    saying so (a notification is not lost to a template's mistake)."""
    try:
        return render(rule.template, event, recipient)
    except ExpressionError as error:
        logger.warning("notification template failed", extra={"rule": str(rule.pk), "error": error.message})
        if rule.template is None:  # an event without what the default names (a workflow)
            return Rendered(event["type"], error.message)
        rendered = _rendered(Rule(pk=rule.pk, template=None), event, recipient)
        rendered.body += "\n\n" + TEMPLATE_FAILED.format(name=rule.template.name, error=error.message)
        return rendered


def _people(rule: Rule) -> list[User]:
    """The rule's members and the holders of its roles who are members of its workspace now."""
    members = Membership.objects.filter(workspace_id=rule.workspace_id)
    chosen = Q(user__in=rule.members.all())
    if rule.roles:
        chosen |= Q(role__in=rule.roles)
    return [membership.user for membership in members.filter(chosen).select_related("user")]


def _notify(
    rule: Rule, event: dict, *, event_types: set[str], key: str, now: datetime, rendered: Rendered | None = None
) -> None:
    """Create the deliveries of one message of the rule (an event's, or a digest's when `rendered` is
    given); idempotency keys derive from `key`, so doing it again creates nothing twice."""
    message = rendered or _rendered(rule, event)
    level = "warning" if rendered else LEVELS.get(event["type"], "info")
    common = {
        "rule": rule,
        "link": event.get("link", ""),
        "level": level,
        "payload": {"type": event["type"], "event": event["id"], "formats": message.formats},
    }
    outgoing = [
        {
            "channel": channel,
            "subject": message.subject,
            "body": message.body,
            "idempotency_key": f"{key}:channel:{channel.pk}",
            **common,
        }
        for channel in rule.channels.filter(enabled=True)
    ]
    people = _people(rule) if rule.member_kinds else []
    if people:
        per_person = rendered is None and uses_recipient(rule.template)  # a digest is one text for all
        outgoing += _to_people(
            rule,
            event,
            people,
            message,
            per_person=per_person,
            event_types=event_types,
            key=key,
            now=now,
            common=common,
        )
    deliveries_create(outgoing)


def _to_people(
    rule: Rule,
    event: dict,
    people: list[User],
    message: Rendered,
    *,
    per_person: bool,
    event_types: set[str],
    key: str,
    now: datetime,
    common: dict,
) -> list[dict]:
    """The message to people: their inboxes at once; the emails and pushes to be made (returned), each
    per their preferences (muted: none; in quiet hours: when they end)."""
    preferences = Preference.objects.in_bulk([person.pk for person in people])

    def wants(person: User, kind: str) -> bool:
        preference = preferences.get(person.pk)
        return preference is None or not all(preference.mutes(event_type=t, kind=kind) for t in event_types)

    if Channel.Kind.IN_APP in rule.member_kinds:
        _inboxes(rule, event, [p for p in people if wants(p, Channel.Kind.IN_APP)], message, per_person, key, common)
    subscribed = set(PushSubscription.objects.filter(user__in=people).values_list("user_id", flat=True))
    outgoing = []
    for kind in (Channel.Kind.EMAIL, Channel.Kind.WEB_PUSH):
        if kind not in rule.member_kinds:
            continue
        for person in people:
            if not wants(person, kind) or (kind == Channel.Kind.WEB_PUSH and person.pk not in subscribed):
                continue
            personal = _rendered(rule, event, person) if per_person else message
            preference = preferences.get(person.pk)
            outgoing.append(
                {
                    "channel": None,
                    "direct_kind": kind,
                    "recipient": person,
                    "subject": personal.subject,
                    "body": personal.body,
                    "send_at": preference.quiet_until(now) if preference else None,
                    "idempotency_key": f"{key}:{kind}:{person.pk}",
                    **common,
                }
            )
    return outgoing


def _inboxes(
    rule: Rule, event: dict, people: list[User], message: Rendered, per_person: bool, key: str, common: dict
) -> None:
    """The in-app message to `people`: one delivery, recorded sent with their notifications."""
    if not people:
        return
    delivery = Delivery.objects.create(
        workspace_id=rule.workspace_id,
        direct_kind=Channel.Kind.IN_APP,
        subject=message.subject,
        body=message.body,
        status=Delivery.Status.SENT,
        attempts=1,
        sent_at=timezone.now(),
        provider_id=f"{len(people)} inbox(es)",
        idempotency_key=f"{key}:in_app",
        **common,
    )
    if per_person:
        groups = [([person.pk], _rendered(rule, event, person)) for person in people]
    else:
        groups = [([person.pk for person in people], message)]
    for user_ids, text in groups:
        inboxes_add(
            workspace_id=rule.workspace_id,
            user_ids=user_ids,
            delivery_id=delivery.pk,
            title=text.subject or text.body[:200],
            body=text.body,
            link=common["link"],
            level=common["level"],
        )


def digests_send(now: datetime | None = None) -> int:
    """Send each digest whose window closed: one message per rule summarising the events it held.
    Beat calls it; a digest survives restarts (the pending matches are rows). Returns how many were sent."""
    now = now or timezone.now()
    due_rules = (
        Match.objects.filter(outcome=Outcome.DIGEST_PENDING, digest_due_at__lte=now)
        .values_list("rule_id", flat=True)
        .distinct()
    )
    sent = 0
    for rule_id in list(due_rules):
        with transaction.atomic():
            rules = Rule.objects.select_for_update(skip_locked=True, of=("self",)).select_related("template")
            rule = rules.filter(pk=rule_id).first()
            if rule is None:
                continue
            matches = list(
                Match.objects.filter(rule=rule, outcome=Outcome.DIGEST_PENDING, digest_due_at__lte=now).order_by("id")
            )
            if not matches:
                continue
            digest = _digest(rule, matches)
            _notify(
                rule,
                digest["event"],
                event_types={match.event_type for match in matches},
                key=f"rule:{rule.pk}:digest:{matches[0].pk}",
                now=now,
                rendered=digest["rendered"],
            )
            Match.objects.filter(pk__in=[match.pk for match in matches]).update(outcome=Outcome.DIGESTED)
            sent += 1
    return sent


def _digest(rule: Rule, matches: list[Match]) -> dict:
    """The digest's event and message: one line per event (its own subject and link)."""
    lines = []
    for match in matches:
        text = _rendered(rule, match.event)
        lines.append(f"- {text.subject}" + (f" — {match.event['link']}" if match.event.get("link") else ""))
    first = matches[0].event
    event = {
        "type": "digest",
        "id": f"digest:{matches[0].pk}",
        "workspace": first["workspace"],
        "link": "/dashboard/notifications/",
        "events": [match.event for match in matches],
    }
    subject = DIGEST_SUBJECT.format(count=len(matches), rule=rule.name)
    return {"event": event, "rendered": Rendered(subject, "\n".join(lines))}
