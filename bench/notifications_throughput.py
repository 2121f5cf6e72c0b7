"""Notification deliveries against raw httpx, and an in-app fan-out (issue 20's benchmark).

    .venv/bin/python bench/notifications_throughput.py [--deliveries 10000] [--members 1000]

(a) `--deliveries` webhook deliveries, made together by `deliveries_create` (as a rule's fan-out makes
them: one insert, one message per DWC_NOTIFICATIONS_SEND_BATCH) and sent by 2
Celery worker processes (solo pool, as the engine benchmarks start them) on the `notifications`
queue to a local sink (aiohttp, one process) that answers 200. Timed from the commit (which sends
the messages) to the last delivery recorded `sent`; the creating is timed apart, and end to end.
Against it, in the same
run: raw httpx POSTs of the same bodies and headers (the sink keeps what it was sent) to the same
sink by 2 sender processes with one keep-alive `httpx.Client` each, the workers' concurrency.
Prints deliveries/s, raw/s and the ratio of the times (target ≤ 3). A second baseline, one new
connection per POST (keep-alive off), shows what the channel's fresh connection per call costs.

(b) fan-out: a workspace with `--members` members and an in-app channel without a roles filter;
the time from one `delivery_create` (committed) until all its Notification rows are visible, polled
every 5 ms (target ≤ 2 s). `--fanout-mode` names how the message comes to be: `delivery` (an in-app
delivery made directly) or `rule` (a `run.failed` handed to the rules, matched by a worker, the
people's inboxes written by the rule's fan-out).

Needs PostgreSQL and Redis on localhost (BENCH_DATABASE_URL and BENCH_REDIS_URL override the
defaults: database dwc_bench_notify, Redis db 5, which is flushed at the start).
"""

import argparse
import multiprocessing
import subprocess
import sys
import time
import uuid
from pathlib import Path

# Run as a file, this script has bench/ on sys.path, not the project that holds bench/ and the apps.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import PROJECT, configure, create_database
from bench.servers import free_port

DATABASE_URL, REDIS_URL = configure(database="dwc_bench_notify", redis_db=5)
WORKERS = 2
POLL_SECONDS = 0.1
FANOUT_POLL_SECONDS = 0.005
SINK_SECRET = "whsec_" + "YmVuY2gtc2luay1zZWNyZXQtMzItYnl0ZXMhISE="


# --- the sink ----------------------------------------------------------------------------------


def sink_main(port: int) -> None:
    """An HTTP server answering 200 to every POST and keeping the body and headers it was sent;
    GET /count says how many, GET /received returns them (JSON)."""
    import json

    from aiohttp import web

    received: list[dict] = []

    async def accept(request: web.Request) -> web.Response:
        body = await request.read()
        received.append({"body": body.decode(), "headers": {k: v for k, v in request.headers.items()}})
        return web.Response(status=200)

    async def count(_request: web.Request) -> web.Response:
        return web.Response(text=str(len(received)))

    async def dump(_request: web.Request) -> web.Response:
        payload = json.dumps(received)
        received.clear()
        return web.Response(text=payload, content_type="application/json")

    app = web.Application()
    app.add_routes([web.post("/hook", accept), web.get("/count", count), web.get("/received", dump)])
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def start_sink() -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--sink", str(port)], cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base}/count", timeout=1)
            return process, base
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise TimeoutError("the sink did not start") from None
            time.sleep(0.1)


# --- the raw baseline --------------------------------------------------------------------------

# Headers the sender sets again itself.
HOP_HEADERS = {"host", "content-length", "connection", "accept-encoding", "accept", "user-agent"}


def raw_sender(url: str, requests: list[dict], keep_alive: bool, go, done) -> None:
    """POST each body with its headers, once `go` is set; put the count of 200s on `done`."""
    import httpx

    prepared = [
        (item["body"].encode(), {k: v for k, v in item["headers"].items() if k.lower() not in HOP_HEADERS})
        for item in requests
    ]
    # Without keep-alive every POST opens its own connection, as the egress client does; the client
    # (its TLS context, loaded once) is kept either way.
    limits = httpx.Limits() if keep_alive else httpx.Limits(max_keepalive_connections=0)
    ok = 0
    with httpx.Client(timeout=10, limits=limits) as client:
        go.wait()
        for content, headers in prepared:
            ok += client.post(url, content=content, headers=headers).status_code == 200
    done.put(ok)


def raw_round(url: str, requests: list[dict], *, keep_alive: bool) -> float:
    """Seconds for WORKERS sender processes to POST `requests` between them."""
    context = multiprocessing.get_context("spawn")
    go, done = context.Event(), context.Queue()
    shares = [requests[index::WORKERS] for index in range(WORKERS)]
    senders = [context.Process(target=raw_sender, args=(url, share, keep_alive, go, done)) for share in shares]
    for sender in senders:
        sender.start()
    time.sleep(3)  # imported and ready
    started = time.perf_counter()
    go.set()
    ok = sum(done.get(timeout=600) for _ in senders)
    elapsed = time.perf_counter() - started
    for sender in senders:
        sender.join(30)
    assert ok == len(requests), f"raw: {ok} of {len(requests)} answered 200"
    return elapsed


# --- the product -------------------------------------------------------------------------------


def start_workers() -> list[subprocess.Popen]:
    workers = []
    for index in range(WORKERS):
        args = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--queues", "notifications"]
        args += ["--without-mingle", "--without-gossip", "--hostname", f"notify{index}@%h", "--loglevel", "WARNING"]
        workers.append(subprocess.Popen(args, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return workers


def wait_until(predicate, *, timeout: float = 600, poll: float = POLL_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish")
        time.sleep(poll)


def deliveries_round(channel, count: int) -> tuple[float, float]:
    """(seconds to create `count` deliveries in one transaction, seconds from its commit, which sends
    their messages, until all were sent)."""
    from django.db import transaction

    from notifications.models import Delivery
    from notifications.services.deliveries import deliveries_create

    sent = Delivery.objects.filter(channel=channel, status=Delivery.Status.SENT)
    before = sent.count()
    started = time.perf_counter()
    with transaction.atomic():
        deliveries_create(
            [
                {
                    "channel": channel,
                    "subject": f"Run failed: nightly report #{index}",
                    "body": "The step `fetch` failed: the server answered 503.",
                    "link": "/dashboard/runs/00000000-0000-0000-0000-000000000000/",
                    "level": "error",
                    "payload": {"type": "run.failed", "run": {"id": str(uuid.uuid4()), "status": "failed"}},
                }
                for index in range(count)
            ]
        )
        created = time.perf_counter()
    wait_until(lambda: sent.count() - before >= count)
    finished = time.perf_counter()
    failed = Delivery.objects.filter(channel=channel).exclude(status=Delivery.Status.SENT).count()
    assert failed == 0, f"{failed} deliveries were not sent"
    return created - started, finished - created


def fanout_via_delivery(channel, members: int) -> float:
    """Seconds from one in-app delivery_create (committed) to its `members` Notification rows visible."""
    from notifications.models import Notification
    from notifications.services.deliveries import delivery_create

    started = time.perf_counter()
    delivery = delivery_create(
        channel=channel, subject="Run failed: nightly report", body="fetch failed", level="error"
    )
    rows = Notification.objects.filter(delivery_id=delivery.pk)
    wait_until(lambda: rows.count() >= members, timeout=60, poll=FANOUT_POLL_SECONDS)
    return time.perf_counter() - started


def fanout_via_rule(channel, members: int) -> float:
    """Seconds from a `run.failed` handed to the rules (events_submit, as the engine's run events are:
    a worker matches it) to its `members` notifications visible: a rule naming every role, inbox only."""
    from notifications.models import Notification, Rule
    from notifications.services.events import events_submit
    from notifications.services.templates import sample_event

    rule, _ = Rule.objects.get_or_create(
        workspace=channel.workspace,
        name="bench fan-out",
        defaults={"events": ["run.failed"], "roles": ["owner", "admin", "editor", "viewer"]},
    )
    event = {**sample_event("run.failed", channel.workspace), "id": f"bench:{uuid.uuid4()}"}
    started = time.perf_counter()
    events_submit([event])
    rows = Notification.objects.filter(delivery__idempotency_key=f"rule:{rule.pk}:{event['id']}:in_app")
    wait_until(lambda: rows.count() >= members, timeout=60, poll=FANOUT_POLL_SECONDS)
    return time.perf_counter() - started


FANOUT_MODES = {"delivery": fanout_via_delivery, "rule": fanout_via_rule}


def setup(members: int):
    """A workspace with `members` members, a signed webhook channel to the sink and an in-app channel."""
    from django.contrib.auth.hashers import make_password

    from accounts.models import Membership, User, Workspace
    from notifications.models import Channel
    from workflows.services.credentials import credential_save

    tag = uuid.uuid4().hex[:8]
    workspace = Workspace.objects.create(name=f"Bench {tag}")
    unusable = make_password(None)
    users = User.objects.bulk_create(
        [User(email=f"member{index}-{tag}@example.com", password=unusable) for index in range(members)]
    )
    Membership.objects.bulk_create([Membership(workspace=workspace, user=user) for user in users])
    credential_save(workspace_id=workspace.pk, name="sink", kind="hmac_secret", value={"secret": SINK_SECRET})
    in_app = Channel.objects.create(workspace=workspace, name="inbox", kind="in_app", config={})
    return workspace, in_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=1_000)
    parser.add_argument("--fanouts", type=int, default=5, help="fan-outs timed; the median is printed")
    parser.add_argument("--fanout-mode", choices=sorted(FANOUT_MODES), default="delivery")
    parser.add_argument("--skip-raw", action="store_true", help="(a) without the baselines (profiling)")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink_main(args.sink)
        return

    import os

    # The sink listens on loopback, which channels may reach only when allowed (as operators allow
    # private addresses); the workers read it from the environment they inherit.
    os.environ["DWC_OUTBOUND_ALLOWLIST"] = "127.0.0.1"
    create_database(DATABASE_URL)
    import django

    django.setup()
    import httpx
    import redis
    from django.core.management import call_command
    from django.db import connection

    from notifications.models import Channel, Delivery, Notification

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:  # earlier invocations' rows (see engine_overhead.py on TRUNCATE)
        cursor.execute(f"TRUNCATE {Notification._meta.db_table}, {Delivery._meta.db_table} CASCADE")
    redis.Redis.from_url(REDIS_URL).flushdb()
    workspace, in_app = setup(args.members)
    sink, base = start_sink()
    hook = Channel.objects.create(
        workspace=workspace, name="sink", kind="webhook", config={"url": f"{base}/hook"}, credential="sink"
    )
    workers = start_workers()
    try:
        time.sleep(4)  # let both workers connect
        deliveries_round(hook, 20)  # warm up: imports, connections
        httpx.get(f"{base}/received")

        created, ours = deliveries_round(hook, args.deliveries)
        received = httpx.get(f"{base}/received", timeout=60).json()
        assert len(received) == args.deliveries, f"the sink got {len(received)} of {args.deliveries}"
        if not args.skip_raw:
            raw = raw_round(f"{base}/hook", received, keep_alive=True)
            httpx.get(f"{base}/received", timeout=60)
            raw_new = raw_round(f"{base}/hook", received, keep_alive=False)
            httpx.get(f"{base}/received", timeout=60)

        fanout = FANOUT_MODES[args.fanout_mode]
        fanout(in_app, args.members)  # warm up
        fanouts = sorted(fanout(in_app, args.members) for _ in range(args.fanouts))
    finally:
        for process in [*workers, sink]:
            process.terminate()
        for process in [*workers, sink]:
            process.wait(30)

    count = args.deliveries
    total = created + ours
    print(f"(a) {count} webhook deliveries, {WORKERS} workers: sent in {ours:.2f} s, {count / ours:.0f} deliveries/s")
    print(f"    creating them (deliveries_create, one transaction) before: {created:.2f} s; end to end {total:.2f} s")
    if not args.skip_raw:
        for label, seconds in [("keep-alive", raw), ("a new connection per POST", raw_new)]:
            print(
                f"    raw httpx, {WORKERS} senders, {label}: {seconds:.2f} s, {count / seconds:.0f}/s; "
                f"ratio {ours / seconds:.2f} (end to end {total / seconds:.2f})"
            )
    median = fanouts[len(fanouts) // 2]
    print(
        f"(b) in-app fan-out to {args.members} members ({args.fanout_mode}): median {median:.3f} s "
        f"of {len(fanouts)} (min {fanouts[0]:.3f}, max {fanouts[-1]:.3f})"
    )


if __name__ == "__main__":
    main()
