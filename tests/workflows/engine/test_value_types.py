"""A value that is exactly one `{{ expression }}` keeps the expression's type through a run — run by a real worker."""

import pytest

from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.engine.test_runs import start, steps_of
from tests.workflows.helpers import create
from workflows.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_transform_keeps_numbers_lists_and_nulls_and_text_stays_text(engine_worker, user_api):
    values = {
        "sum": "{{ input.a + input.b }}",
        "ratio": "{{ input.b / 4 }}",
        "big": "{{ input.a + input.b > 2 }}",
        "tags": "{{ input.tags }}",
        "nothing": "{{ input.missing_ok }}",
        "label": "{{ input.a }} + {{ input.b }}",
        "quoted": "{{ '3' }}",
    }
    workflow = create(
        user_api, {"name": "Sums", "nodes": [{"key": "add", "type": "transform", "config": {"values": values}}]}
    )
    run_input = {"a": 1, "b": 2, "tags": ["x", "y"], "missing_ok": None}
    run = wait_for_run(start(user_api, workflow["id"], run_input)["id"])
    assert run.status == "succeeded", run.error
    assert steps_of(run.pk)["add"].output == {
        "sum": 3,
        "ratio": 0.5,
        "big": True,
        "tags": ["x", "y"],
        "nothing": None,
        "label": "1 + 2",
        "quoted": "3",
    }


def test_loop_items_reach_the_child_run_with_their_type(engine_worker, user_api):
    create(
        user_api,
        {
            "name": "Double",
            "id": "double",
            "input_schema": {"type": "object", "required": ["v"], "properties": {"v": {"type": "integer"}}},
            "nodes": [{"key": "twice", "type": "transform", "config": {"values": {"v": "{{ input.v * 2 }}"}}}],
        },
    )
    parent = create(
        user_api,
        {
            "name": "Each number",
            "nodes": [
                {
                    "key": "each",
                    "type": "loop",
                    "config": {"items": "input.numbers", "workflow": "double", "input": {"v": "{{ item }}"}},
                }
            ],
        },
    )
    run = wait_for_run(start(user_api, parent["id"], {"numbers": [1, 2]})["id"], timeout=60)
    assert run.status == "succeeded", run.error
    assert steps_of(run.pk)["each"].output == [{"twice": {"v": 2}}, {"twice": {"v": 4}}]
    children = Run.objects.filter(parent_step__run=run).order_by("parent_index")
    assert [child.input for child in children] == [{"v": 1}, {"v": 2}]
