"""One notification to 1,000 members' inboxes, pushed to their websockets: what `inboxes_add` costs
(one insert, one grouped unread count, one pipelined Redis round trip for all the pushes), against
the straightforward version in the same run (the same insert, then per user an unread count and a
channel-layer group_send).

    .venv/bin/python bench/inbox_fanout.py

Uses a fresh database (BENCH_DATABASE_URL, default dwc_inbox) and the Redis of BENCH_REDIS_URL.
Prints the median of ROUNDS rounds of each and the ratio. The issue asks for a fan-out to 1,000
inboxes to be visible within 2 s.
"""

import statistics
import sys
import time
from pathlib import Path

# Run as a file, this script has bench/ on sys.path, not the project that holds bench/ and the apps.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import configure, recreate_database

DATABASE_URL, _ = configure(database="dwc_inbox", redis_db=11)
MEMBERS = 1000
ROUNDS = 5


def main() -> None:
    recreate_database(DATABASE_URL)
    import django

    django.setup()
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer
    from django.core.management import call_command
    from django.db import transaction

    from accounts.models import Membership, User, Workspace
    from notifications import realtime
    from notifications.channels.in_app import inboxes_add
    from notifications.models import Notification

    call_command("migrate", interactive=False, verbosity=0)
    owner = User.objects.create_user(email="owner@bench.example", password=None)
    workspace = Workspace.objects.create(name="Fan-out", created_by=owner)
    users = User.objects.bulk_create([User(email=f"member-{index}@bench.example") for index in range(MEMBERS)])
    Membership.objects.bulk_create([Membership(workspace=workspace, user=user, role="viewer") for user in users])
    user_ids = [user.pk for user in users]
    fields = {"workspace_id": workspace.pk, "delivery_id": None, "title": "Run failed", "body": "", "link": "/x"}

    def ours() -> None:
        with transaction.atomic():
            inboxes_add(user_ids=user_ids, level="error", **fields)

    layer = get_channel_layer()

    def straightforward() -> None:
        with transaction.atomic():
            rows = [Notification(user_id=user_id, level="error", **fields) for user_id in user_ids]
            Notification.objects.bulk_create(rows)
        for row in rows:
            unread = realtime.unread_counts([row.user_id]).get(row.user_id, 0)
            event = {"type": realtime.CREATED, "notification": realtime.notification_shape(row), "unread": unread}
            async_to_sync(layer.group_send)(realtime.user_group(row.user_id), {"type": event["type"], "event": event})

    timings: dict[str, list[float]] = {"inboxes_add": [], "straightforward": []}
    for _ in range(ROUNDS):
        for name, run in (("inboxes_add", ours), ("straightforward", straightforward)):
            started = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - started)
    ours_ms = statistics.median(timings["inboxes_add"]) * 1000
    baseline_ms = statistics.median(timings["straightforward"]) * 1000
    print(f"{MEMBERS} inboxes, median of {ROUNDS}:")
    print(f"  inboxes_add (rows, counts, pipelined pushes): {ours_ms:8.1f} ms")
    print(f"  straightforward (rows, then count + group_send per user): {baseline_ms:8.1f} ms")
    print(f"  ratio: {baseline_ms / ours_ms:.1f}x faster")


if __name__ == "__main__":
    main()
