"""IntervalBatcher: at once when quiet, together under load, always in order."""

import threading
import time

from workflows.engine.batching import IntervalBatcher

INTERVAL = 0.2


class Recorder:
    def __init__(self):
        self.batches: list[tuple[str, list]] = []
        self.sent = threading.Event()

    def __call__(self, batch: list) -> None:
        self.batches.append((threading.current_thread().name, list(batch)))
        self.sent.set()


def test_the_first_items_after_a_quiet_interval_leave_at_once_from_the_caller():
    recorder = Recorder()
    batcher = IntervalBatcher(recorder, interval=INTERVAL, name="test-batches")

    batcher.add([1])

    assert recorder.batches == [(threading.current_thread().name, [1])]


def test_items_added_within_the_interval_leave_together_in_order_at_its_end():
    recorder = Recorder()
    batcher = IntervalBatcher(recorder, interval=INTERVAL, name="test-batches")
    started = time.monotonic()

    batcher.add([1])
    batcher.add([2, 3])
    batcher.add([4])
    assert len(recorder.batches) == 1  # the rest waits for the interval's end

    recorder.sent.clear()
    assert recorder.sent.wait(5)
    assert recorder.batches[1] == ("test-batches", [2, 3, 4])
    assert time.monotonic() - started >= INTERVAL * 0.9


def test_flush_sends_what_waits_at_once():
    recorder = Recorder()
    batcher = IntervalBatcher(recorder, interval=60, name="test-batches")
    batcher.add(["first"])
    batcher.add(["second"])

    batcher.flush()

    assert [batch for _, batch in recorder.batches] == [["first"], ["second"]]


def test_a_batch_that_fails_does_not_stop_the_ones_after_it(caplog):
    recorder = Recorder()

    def send(batch: list) -> None:
        if batch == ["fails"]:
            raise ConnectionError("the broker is away")
        recorder(batch)

    batcher = IntervalBatcher(send, interval=0.05, name="test-batches")
    batcher.add(["first"])
    batcher.add(["fails"])  # within the interval: sent by the thread, and fails there
    time.sleep(0.2)
    batcher.add(["later"])
    batcher.add(["again"])  # within the interval: the thread must still be there to send it
    assert recorder.sent.wait(5)
    deadline = time.monotonic() + 5
    while [batch for _, batch in recorder.batches][-1:] != [["again"]] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [batch for _, batch in recorder.batches] == [["first"], ["later"], ["again"]]
    assert "a batch could not be sent" in caplog.text
