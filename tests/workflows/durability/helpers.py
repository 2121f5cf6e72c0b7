"""What the durability tests share: playing the beat's recovery task, starting runs, waiting."""

import time

from tests.processes import wait_until
from tests.workflows.workers import TERMINAL
from workflows.engine import recovery
from workflows.models import Run


def recover_until_finished(run_ids, timeout: float, supervise=None) -> list[Run]:
    """Play the beat task (and, with `supervise`, the process supervisor) until the runs finish."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list(Run.objects.filter(pk__in=run_ids))
        if all(run.status in TERMINAL for run in runs):
            return runs
        if supervise is not None:
            supervise()
        recovery.recover()
        time.sleep(0.5)
    pending = Run.objects.filter(pk__in=run_ids).exclude(status__in=TERMINAL).values_list("pk", "status")
    raise AssertionError(f"runs not finished within {timeout}s: {list(pending)[:5]}")


def run_of(api, workflow_id) -> str:
    answer = api.post(f"/api/v3/workflows/{workflow_id}/runs", {"input": {}}, format="json")
    assert answer.status_code == 202, answer.content
    return answer.json()["id"]


def wait_for(predicate, timeout: float = 20, message: str = "condition"):
    """tests.processes.wait_until at the pace these tests need: every 50 ms, 20 s unless told."""
    return wait_until(predicate, timeout, interval=0.05, message=message)
