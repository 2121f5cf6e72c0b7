from workflows.engine.expressions.rendering import evaluate_expression
from workflows.engine.nodes.base import NodeResult, NodeType


class ConditionNode(NodeType):
    """Evaluate an expression and continue only along the edge labelled with its truth.

    Edges labelled `true` run when the expression is truthy, those labelled `false` otherwise; the other
    side is skipped. The output is `{result}`, the expression's truth as a boolean.
    """

    name = "condition"
    group = "logic"
    example = {"key": "long_enough", "config": {"expression": "nodes.outline.content | length > 200"}}
    inline = True
    description = "Evaluates an expression and continues only along the matching true or false edge."
    expression_fields = ("expression",)
    branches = ("true", "false")
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["expression"],
        "properties": {
            "expression": {
                "description": "An expression such as `nodes.check.output.status == 200`, bare or in `{{ }}`.",
                "type": "string",
                "minLength": 1,
            },
        },
    }

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult:
        return NodeResult(
            output={"result": bool(evaluate_expression(prepared["config"]["expression"], context.expressions))}
        )
