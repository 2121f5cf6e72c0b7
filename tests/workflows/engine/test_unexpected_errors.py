"""An error the engine did not expect fails the step it happened in, as itself: type and message.

The node's own work is guarded where it runs; these errors happen around it, while the step's
result is stored. PostgreSQL stores no NUL character in text or jsonb, so a result holding one
(a model or a server may well send one) makes storing it fail with a DataError.
"""

import json

import pytest

from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.engine.test_runs import start, steps_of
from tests.workflows.helpers import create
from workflows.engine.recovery import WORKER_LOST

pytestmark = pytest.mark.django_db(transaction=True)

NUL = "{{ '\\x00' }}"


@pytest.mark.parametrize(
    "nodes",
    [
        pytest.param([{"key": "bad", "prompt": f"before {NUL} after"}], id="document step"),
        # Cheap steps run as a chain in one transaction: the error must land on the step that caused it.
        pytest.param(
            [{"key": "good", "type": "text", "content": "fine"}, {"key": "bad", "type": "text", "content": NUL}],
            id="inline chain",
        ),
    ],
)
def test_an_error_storing_a_steps_result_fails_that_step_with_the_error_itself(engine_worker, user_api, nodes):
    workflow = create(user_api, {"name": "NUL", "nodes": nodes})
    run = wait_for_run(start(user_api, workflow["id"])["id"], timeout=15)
    steps = steps_of(run.pk)

    assert (run.status, steps["bad"].status) == ("failed", "failed")
    assert steps["bad"].error["message"].startswith("DataError: "), steps["bad"].error
    assert WORKER_LOST not in steps["bad"].error["message"]
    assert run.error["message"] == f"Step bad failed: {steps['bad'].error['message']}"
    assert all(step.status == "succeeded" for key, step in steps.items() if key != "bad")


def test_members_see_an_unexpected_errors_type_and_message_but_never_its_traceback(engine_worker, user_api):
    workflow = create(user_api, {"name": "NUL", "nodes": [{"key": "bad", "type": "text", "content": NUL}]})
    run = wait_for_run(start(user_api, workflow["id"])["id"], timeout=15)

    steps = user_api.get(f"/api/v3/runs/{run.pk}/steps").json()
    events = user_api.get(f"/api/v3/runs/{run.pk}/events").content.decode()

    [bad] = [step for step in steps if step["key"] == "bad"]
    assert set(bad["error"]) == {"type", "message", "attempt"}, bad["error"]
    assert bad["error"]["message"].startswith("DataError: ")
    for shown in (json.dumps(steps), events):
        assert "traceback" not in shown.lower() and 'File "/' not in shown
