"""A worker killed (SIGKILL) during a document step's call to the model: its reservation in the budget
never settles, and recovery must give the room back before the step's next attempt asks for it."""

import signal
import time
from decimal import Decimal

import pytest

from accounts.access import personal_workspace
from tests.workflows.durability.helpers import recover_until_finished, run_of, wait_for
from tests.workflows.durability.test_crashes import FAST_CLOCK, fast_clock  # noqa: F401 - fixture
from tests.workflows.helpers import create
from tests.workflows.llm_servers import openai_server
from tests.workflows.workers import start_worker, worker_env
from workflows.models import Budget, BudgetReservation, BudgetUsage, StepRun
from workflows.services.credentials import credential_save

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

# The call's estimate: the prompt "Go" (1 token by the heuristic, 4 for the message) and max_tokens 100.
ESTIMATE = 105


def test_a_killed_workers_reservation_is_released_and_the_retried_call_gets_the_room(user_api, user, threaded_server):
    workspace = personal_workspace(user)
    # Every call takes 4 s: long enough to kill the worker during the first one.
    llm = openai_server(threaded_server, text="Done.", model="gpt-4o-mini", tokens_in=5, tokens_out=100, delay=4)
    credential_save(
        workspace_id=str(workspace.pk),
        name="openai",
        kind="openai",
        value={"api_key": "sk-t", "base_url": llm.base_url},
    )
    # Room for exactly one call: the retried attempt reserves only if the dead one's reservation is gone.
    budget = Budget.objects.create(
        workspace=workspace, name="One call", metric="tokens", period="day", limit=Decimal(ESTIMATE)
    )
    node = {"key": "doc", "type": "document", "prompt": "Go", "config": {"credential": "openai", "max_tokens": 100}}
    workflow = create(user_api, {"name": "Budgeted", "nodes": [node]})

    doomed = start_worker("doomed", env=worker_env(**FAST_CLOCK))
    run_id = run_of(user_api, workflow["id"])
    wait_for(lambda: len(llm.requests) == 1, message="the first call to reach the model")
    assert BudgetReservation.objects.filter(usage__budget=budget, attempt=1).exists()
    doomed.signal_group(signal.SIGKILL)
    doomed.popen.wait(10)

    survivor = start_worker("survivor", env=worker_env(**FAST_CLOCK))
    try:
        started = time.monotonic()
        [run] = recover_until_finished([run_id], timeout=60)
        assert time.monotonic() - started < 60
    finally:
        survivor.stop()

    step = StepRun.objects.get(run_id=run_id, node_key="doc")
    assert run.status == "succeeded", step.error
    assert (step.attempt, step.crashes) == (2, 1)
    assert len(llm.requests) == 2
    assert not BudgetReservation.objects.exists()
    usage = BudgetUsage.objects.get(budget=budget)
    assert (usage.spent, usage.calls, usage.refused) == (ESTIMATE, 1, 0)  # the dead call is not counted
