from workflows.engine.nodes.base import NodeResult, NodeType


class TransformNode(NodeType):
    """Build a JSON value from `values`, rendering every string in it as a template (n8n's "Set").

    The output is `values` with each string replaced by its rendering; numbers, booleans, nulls and the
    shape of objects and lists are kept as given. A string that is exactly one `{{ expression }}` becomes
    the expression's value (`"{{ input.a + input.b }}"` → 3, `"{{ input.tags }}"` → a list); a string
    with text around its expression is text.
    """

    name = "transform"
    group = "logic"
    example = {
        "key": "shape",
        "config": {
            "values": {"title": "{{ input.topic | title }}", "words": "{{ nodes.outline.content | wordcount }}"}
        },
    }
    inline = True
    description = "Builds a JSON value whose strings are rendered as templates."
    value_fields = ("values",)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["values"],
        "properties": {
            "values": {
                "description": "Any JSON value; every string inside it is a template, and a string that is "
                "exactly one `{{ expression }}` keeps the expression's type (number, boolean, list, object, null)."
            },
        },
    }

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult:
        return NodeResult(output=prepared["config"]["values"])
