from workflows.engine.errors import PermanentError
from workflows.engine.nodes.base import ChildRun, NodeResult, NodeType, Suspend


class SubworkflowNode(NodeType):
    """Start another workflow with a rendered input, and by default wait for it to finish.

    With `wait` (the default) the output is the child run's output and a failed child fails the step;
    without it the step finishes once the child run is started and its output is `{run_id}`.
    """

    name = "subworkflow"
    group = "logic"
    example = {
        "key": "summarize",
        "config": {"workflow": "summarize", "input": {"text": "{{ nodes.outline.content }}"}},
    }
    description = "Runs another workflow with an input and returns its output."
    value_fields = ("input",)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["workflow"],
        "properties": {
            "workflow": {
                "description": "Id or slug of the workflow to run.",
                "type": "string",
                "minLength": 1,
                "maxLength": 100,
            },
            "input": {
                "description": "Input of the child run; every string inside it is a template, and one that is "
                "exactly one `{{ expression }}` keeps the expression's type.",
                "type": "object",
            },
            "wait": {"description": "Whether to wait for the child run to finish.", "type": "boolean", "default": True},
        },
    }

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult | Suspend:
        config = prepared["config"]
        if not context.state.get("started"):
            child = ChildRun(workflow=config["workflow"], input=config.get("input", {}), index=0)
            if not config.get("wait", True):
                return NodeResult(spawn=[child])
            return Suspend(
                reason="children", spawn=[child], state={"started": True}, message=f"Running {config['workflow']}"
            )
        if not context.children:
            return Suspend(reason="children", state=context.state)
        child = context.children[0]
        if child["status"] != "succeeded":
            message = (child["error"] or {}).get("message", "")
            raise PermanentError(
                f"The sub-workflow run {child['status']}: {message}".rstrip(": "), details={"child": child}
            )
        return NodeResult(output=child["output"])
