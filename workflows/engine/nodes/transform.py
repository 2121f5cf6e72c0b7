from workflows.engine.nodes.base import NodeResult, NodeType


class TransformNode(NodeType):
    """Build a JSON value from `values`, rendering every string in it as a template (n8n's "Set").

    The output is `values` with each string replaced by its rendering; numbers, booleans, nulls and the
    shape of objects and lists are kept as given.
    """

    name = "transform"
    inline = True
    description = "Builds a JSON value whose strings are rendered as templates."
    template_fields = ("values",)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["values"],
        "properties": {
            "values": {"description": "Any JSON value; every string inside it is a template."},
        },
    }

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult:
        return NodeResult(output=prepared["config"]["values"])
