"""The sliding log the throttles count in (core.throttling), in Redis and in the embedded mode's memory."""

import threading
import time
import uuid

import pytest
from django.core.cache import caches

from core.throttling import sliding_log_hit, window_hit
from tests.mode_settings import settings_of


@pytest.fixture(params=["redis", "memory"])
def store(request, settings, tmp_path):
    if request.param == "memory":
        settings.CACHES = settings_of("config.settings.base", ["CACHES"], tmp_path)["CACHES"]
    return request.param


def test_a_rate_lets_in_that_many_requests_per_period_and_says_when_the_next_may_come(store):
    key, now = f"test:{uuid.uuid4()}", time.time()
    assert [sliding_log_hit(key, 3, 60, now + n) for n in range(3)] == [None, None, None]
    wait = sliding_log_hit(key, 3, 60, now + 10)
    assert wait == pytest.approx(50)  # the first request leaves the period 60 s after it came
    assert sliding_log_hit(key, 3, 60, now + 60) is None
    assert sliding_log_hit(key, 3, 60, now + 60.5) is not None  # refused requests were not counted


def test_a_lowered_rate_applies_to_the_requests_already_counted(store):
    key, now = f"test:{uuid.uuid4()}", time.time()
    for n in range(5):
        assert sliding_log_hit(key, 1000, 60, now + n) is None
    assert sliding_log_hit(key, 3, 60, now + 5) == pytest.approx(55)


def test_requests_at_once_from_many_threads_let_in_exactly_the_rate():
    """DRF's own throttle reads and writes the log in two round trips: requests arriving together all
    read the same count and all get in. The Lua script counts them one at a time."""
    key, admitted, start = f"test:{uuid.uuid4()}", [], threading.Barrier(20)

    def hit():
        start.wait()
        if sliding_log_hit(key, 10, 60, time.time()) is None:
            admitted.append(1)

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 10


def test_a_log_in_redis_expires_with_its_period():
    key = f"test:{uuid.uuid4()}"
    assert sliding_log_hit(key, 3, 1, time.time()) is None
    redis = caches["throttles"]._cache.get_client(write=False)
    name = caches["throttles"].make_and_validate_key(f"log:{key}")
    assert 0 < redis.pttl(name) <= 1000


# --- fixed windows (webhook rates) ---------------------------------------------------------------


def test_a_window_counts_its_requests_and_the_next_window_starts_again(store):
    key, start = f"test:{uuid.uuid4()}", 600 * (time.time() // 600)
    assert [window_hit(key, 60, start + n) for n in (0, 10, 59)] == [1, 2, 3]
    assert [window_hit(key, 60, start + n) for n in (60, 61)] == [1, 2]


def test_a_window_counts_requests_from_many_threads_one_at_a_time(store):
    key, counts, start, now = f"test:{uuid.uuid4()}", [], threading.Barrier(20), time.time()

    def hit():
        start.wait()
        counts.append(window_hit(key, 60, now))

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 21))


def test_a_window_in_redis_expires_after_it_closed_and_keeps_its_first_expiry():
    key, now = f"test:{uuid.uuid4()}", time.time()
    window_hit(key, 60, now)
    redis = caches["throttles"]._cache.get_client(write=False)
    name = caches["throttles"].make_and_validate_key(f"window:{key}:{int(now // 60)}")
    first = redis.ttl(name)
    assert 60 < first <= 120
    time.sleep(1.1)
    window_hit(key, 60, now)
    assert redis.ttl(name) < first  # not pushed back by later requests
