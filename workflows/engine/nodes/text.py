from workflows.engine.nodes.base import NodeResult, NodeType


class TextNode(NodeType):
    """Make a document from the node's content, rendered as a template; no model is called.

    The output is a Document (title, content) like a document node's, so later nodes cannot tell them apart.
    """

    name = "text"
    group = "documents"
    example = {"key": "letter", "title": "Letter", "content": "Dear {{ input.name }},\n\n{{ nodes.outline.content }}"}
    inline = True
    description = "Produces a document from the node's content, rendered as a template."
    uses_content = True
    template_fields = ("title",)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "format": {
                "description": "Format of the content.",
                "enum": ["markdown", "text", "json"],
                "default": "markdown",
            },
            "title": {"description": "Title of the document (template).", "type": "string", "maxLength": 1000},
        },
    }

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult:
        config = prepared["config"]
        return NodeResult(
            output={
                "title": config.get("title") or prepared["title"],
                "content": prepared["content"],
                "format": config.get("format", "markdown"),
            }
        )
