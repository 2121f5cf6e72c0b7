"""Waiting for runs to end without polling: the engine announces each run that ended, and the
requests of this process that wait on it (a webhook's `?wait=`) wake at once.

- `announce(events)`, called by `workflows.events.publish` after a transaction committed (in a
  worker, or in a request's thread), picks the runs whose final event is among them. In the
  distributed mode it names them in one Redis PUBLISH, which every serving process hears through
  one subscription of its own (a thread, started when its first request waits); in the embedded
  mode, where the worker runs inside the serving process, it wakes that process's waiters directly.
- `expect(run_id)`, from any thread, registers an `Expectation` *before* its caller reads the run
  from the database: an end committed after that read is announced to it, so no wake-up is lost.
  `await expectation.wait(seconds)` then returns when it is woken, or after `seconds`; `close()`
  unregisters it (an Expectation is also a context manager that does).

The database stays the truth: an announcement only says "read the run again". One can still be
missed (a worker could not reach Redis, a run ended by an UPDATE outside the engine), so waiters also
read their run every settings.DWC_WEBHOOK_WAIT_RECHECK_SECONDS. A subscription that was lost and is
back wakes every waiter once, for the ends announced while it was away. `wake_all()` wakes every
waiter, for a server that is stopping (`manage.py serve`, core.shutdown).

Not a channel-layer receive per request: cancelling channels_redis receives under load once stalled
every waiter of the process. Here a waiter awaits a plain asyncio.Event.
"""

import asyncio
import logging
import os
import threading
import time
from contextlib import suppress

import redis
from django.conf import settings

from workflows.models import Run

logger = logging.getLogger(__name__)

FINAL_EVENTS = frozenset(f"run.{status}" for status in Run.FINISHED)
# An announcement that cannot reach Redis within this long is given up, and none is tried for
# BACKOFF_SECONDS after (the waiters' re-check answers them meanwhile).
PUBLISH_TIMEOUT_SECONDS = 0.5
BACKOFF_SECONDS = 5.0
# A subscription that failed is tried again after this long; a quiet one is checked (PING) this often.
RESUBSCRIBE_SECONDS = 1.0
HEALTH_CHECK_SECONDS = 30


def channel(redis_url: str) -> str:
    """The Redis channel of run ends. Pub/sub ignores database numbers: the number is in the name,
    so that deployments (or test runs) sharing a Redis server do not hear each other."""
    database = redis.connection.parse_url(redis_url).get("db", 0)
    return f"dwc.run-ends.{database}"


def ended_runs(events: list[dict]) -> list[str]:
    """The ids of the runs that ended, among these envelopes."""
    return [event["run"] for event in events if event["type"] in FINAL_EVENTS]


class Expectation:
    """One waiter's claim on the announcement of its run's end. Woken from any thread."""

    def __init__(self, run_id: str, board: "RunEnds") -> None:
        self.run_id = run_id
        self._board = board
        self._lock = threading.Lock()
        self._woken = False
        self._event: asyncio.Event | None = None  # made by the first wait, on the waiter's loop
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        with self._lock:
            self._woken = True
            loop, event = self._loop, self._event
        if event is not None:
            with suppress(RuntimeError):  # the loop closed: nobody waits there any more
                loop.call_soon_threadsafe(event.set)

    async def wait(self, seconds: float) -> None:
        """Return once woken (since the last wait returned), or after `seconds`."""
        with self._lock:
            if not self._woken:
                if self._event is None:
                    self._loop, self._event = asyncio.get_running_loop(), asyncio.Event()
                event = self._event
            else:
                event = None
        if event is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), seconds)
        with self._lock:
            self._woken = False
            if self._event is not None:
                self._event.clear()

    def close(self) -> None:
        self._board.forget(self)

    def __enter__(self) -> "Expectation":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


class _Subscription(threading.Thread):
    """This process's subscription to the run ends announced in Redis; wakes their waiters."""

    def __init__(self, redis_url: str, board: "RunEnds") -> None:
        super().__init__(name="run-ends", daemon=True)  # a daemon: it never holds up exit
        self.redis_url = redis_url
        self.board = board
        self.subscribed = threading.Event()
        self.pid = os.getpid()

    def run(self) -> None:
        name = channel(self.redis_url)
        lost = False
        while True:
            client = redis.Redis.from_url(
                self.redis_url, socket_keepalive=True, health_check_interval=HEALTH_CHECK_SECONDS
            )
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(name)
                while True:
                    message = pubsub.get_message(timeout=HEALTH_CHECK_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.subscribed.set()
                        if lost:  # ends announced while away went unheard: every waiter reads again
                            logger.info("run-end subscription back")
                            self.board.wake_all()
                    elif message["type"] == "message":
                        self.board.ended(message["data"].decode().split())
            except (redis.RedisError, OSError):
                if not lost:
                    logger.warning("lost the run-end subscription; waiters fall back on re-reading their runs")
                lost = True
            finally:
                self.subscribed.clear()
                with suppress(redis.RedisError, OSError):
                    pubsub.close()
                    client.close()
            time.sleep(RESUBSCRIBE_SECONDS)


class _Publisher:
    """PUBLISHes run ends from any thread, giving up for BACKOFF_SECONDS when Redis fails."""

    def __init__(self, redis_url: str) -> None:
        self.channel = channel(redis_url)
        self.client = redis.Redis.from_url(
            redis_url, socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS, socket_timeout=PUBLISH_TIMEOUT_SECONDS
        )
        self.resume_at = 0.0

    def send(self, run_ids: list[str]) -> None:
        if time.monotonic() < self.resume_at:
            return
        try:
            self.client.publish(self.channel, " ".join(run_ids))
        except redis.RedisError:
            self.resume_at = time.monotonic() + BACKOFF_SECONDS
            logger.warning("could not announce run ends; not trying again for %s s", BACKOFF_SECONDS, exc_info=True)


class RunEnds:
    """The expectations of this process, and how run ends reach them (see the module's docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.expected: dict[str, set[Expectation]] = {}
        self._publisher: _Publisher | None = None
        self._subscription: _Subscription | None = None

    def announce(self, events: list[dict]) -> None:
        run_ids = ended_runs(events)
        if not run_ids:
            return
        if not settings.REDIS_URL:
            self.ended(run_ids)
            return
        if self._publisher is None:
            with self.lock:
                if self._publisher is None:
                    self._publisher = _Publisher(settings.REDIS_URL)
        self._publisher.send(run_ids)

    def expect(self, run_id) -> Expectation:
        """Register a waiter for the end of run `run_id`; read the run after this returns.

        In the distributed mode this first waits, at most DWC_WEBHOOK_WAIT_RECHECK_SECONDS, until
        this process is subscribed (only the first waiter does, or one while Redis is away)."""
        if settings.REDIS_URL:
            self._subscribed().subscribed.wait(settings.DWC_WEBHOOK_WAIT_RECHECK_SECONDS)
        expectation = Expectation(str(run_id), self)
        with self.lock:
            self.expected.setdefault(expectation.run_id, set()).add(expectation)
        return expectation

    def forget(self, expectation: Expectation) -> None:
        with self.lock:
            expectations = self.expected.get(expectation.run_id)
            if expectations is not None:
                expectations.discard(expectation)
                if not expectations:
                    del self.expected[expectation.run_id]

    def ended(self, run_ids: list[str]) -> None:
        """Wake the waiters of these runs, from any thread."""
        with self.lock:
            woken = [expectation for run_id in run_ids for expectation in self.expected.get(run_id, ())]
        for expectation in woken:
            expectation.wake()

    def wake_all(self) -> None:
        """Wake every waiter of this process, from any thread: they read their runs again."""
        with self.lock:
            woken = [expectation for expectations in self.expected.values() for expectation in expectations]
        for expectation in woken:
            expectation.wake()

    def _subscribed(self) -> _Subscription:
        subscription = self._subscription
        if subscription is None or subscription.pid != os.getpid():  # none yet, or a forked child's copy
            with self.lock:
                subscription = self._subscription
                if subscription is None or subscription.pid != os.getpid():
                    subscription = self._subscription = _Subscription(settings.REDIS_URL, self)
                    subscription.start()
        return subscription


_run_ends = RunEnds()
announce = _run_ends.announce
expect = _run_ends.expect
wake_all = _run_ends.wake_all
