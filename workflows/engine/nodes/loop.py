from workflows.engine.nodes.base import NodeType


class LoopNode(NodeType):
    """Run a workflow once per item of a list, at most `concurrency` runs at a time.

    `items` is an expression that must evaluate to a list of at most `max_items` items; each child run
    gets `input` rendered with `item` and `index` available. The output is the list of the child runs'
    outputs, in item order.
    """

    name = "loop"
    description = "Runs a workflow once for each item of a list, with bounded concurrency."
    expression_fields = ("items",)
    template_fields = ("input",)
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
                "description": "Input of each child run; strings are templates with `item` and `index` available.",
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
