from workflows.engine.errors import PermanentError
from workflows.engine.expressions.rendering import evaluate_expression, render_value
from workflows.engine.nodes.base import ChildRun, NodeResult, NodeType, Suspend


class LoopNode(NodeType):
    """Run a workflow once per item of a list, at most `concurrency` runs at a time.

    `items` is an expression that must evaluate to a list of at most `max_items` items; each child run
    gets `input` rendered with `item` and `index` available. The output is the list of the child runs'
    outputs, in item order.
    """

    name = "loop"
    group = "logic"
    example = {
        "key": "each_chapter",
        "config": {
            "items": "{{ input.chapters }}",
            "workflow": "write-chapter",
            "input": {"chapter": "{{ item }}"},
            "concurrency": 2,
        },
    }
    description = "Runs a workflow once for each item of a list, with bounded concurrency."
    expression_fields = ("items",)
    value_fields = ("input",)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "workflow"],
        "properties": {
            "items": {
                "description": "An expression evaluating to a list, such as `nodes.fetch.output.body.rows`.",
                "type": "string",
                "minLength": 1,
            },
            "workflow": {
                "description": "Id or slug of the workflow to run for each item.",
                "type": "string",
                "minLength": 1,
                "maxLength": 100,
            },
            "input": {
                "description": "Input of each child run; strings are templates with `item` and `index` available, "
                "and `{{ item }}` alone keeps the item's type.",
                "type": "object",
            },
            "concurrency": {
                "description": "How many child runs may run at once.",
                "type": "integer",
                "minimum": 1,
                "maximum": 50,
                "default": 1,
            },
            "max_items": {
                "description": "The most items the list may have; a longer list fails the step.",
                "type": "integer",
                "minimum": 1,
                "maximum": 10_000,
                "default": 1000,
            },
        },
    }

    @classmethod
    def prepare(cls, node: dict, context) -> dict:
        # `input` is rendered once per item, with `item` and `index`, when the item's run starts.
        return {"config": dict(node["config"]), "title": node.get("title", "")}

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult | Suspend:
        config = prepared["config"]
        state = dict(context.state)
        if "items" not in state:
            items = evaluate_expression(config["items"], context.expressions)
            if not isinstance(items, list):
                raise PermanentError(NOT_A_LIST.format(type=type(items).__name__))
            limit = config.get("max_items", 1000)
            if len(items) > limit:
                raise PermanentError(TOO_MANY_ITEMS.format(count=len(items), limit=limit))
            state = {"items": items, "started": 0}
        items, finished = state["items"], len(context.children)
        if finished == len(items):
            failed = [child["index"] for child in context.children if child["status"] != "succeeded"]
            if failed:
                raise PermanentError(ITEMS_FAILED.format(indexes=failed), details={"failed": failed})
            return NodeResult(output=[child["output"] for child in sorted(context.children, key=lambda c: c["index"])])
        running = state["started"] - finished
        room = max(config.get("concurrency", 1) - running, 0)
        spawn = []
        for index in range(state["started"], min(state["started"] + room, len(items))):
            scope = {**context.expressions, "item": items[index], "index": index}
            child_input = (
                render_value(config["input"], scope) if "input" in config else {"item": items[index], "index": index}
            )
            spawn.append(ChildRun(workflow=config["workflow"], input=child_input, index=index))
        state["started"] += len(spawn)
        return Suspend(reason="children", spawn=spawn, state=state, message=f"{finished} of {len(items)} items done")


NOT_A_LIST = "'items' must evaluate to a list, not {type}."
TOO_MANY_ITEMS = "'items' has {count} items; the loop allows at most {limit} (max_items)."
ITEMS_FAILED = "The runs for items {indexes} did not succeed."
