from workflows.engine.nodes.base import NodeType
from workflows.engine.nodes.schema import credential_name


class DocumentNode(NodeType):
    """Render the node's prompt and ask a provider's model to write a document from it.

    The `template` provider needs no model or credential: the rendered prompt is the document. The
    output is a Document (title, content, usage), stored with its lineage.
    """

    name = "document"
    description = "Generates a document by sending the rendered prompt to a language model provider."
    uses_prompt = True
    requires_prompt = True
    template_fields = ("system", "title")
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "provider": {
                "description": "Who writes the document; `template` uses the rendered prompt as the document.",
                "enum": ["template", "openai", "anthropic"],
                "default": "template",
            },
            "model": {
                "description": "The provider's model name; the provider's default when absent.",
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
            },
            "credential": credential_name(
                "Name of the workspace credential holding the provider's API key (never the key)."
            ),
            "system": {"description": "System instructions for the model (template).", "type": "string"},
            "temperature": {"description": "Sampling temperature.", "type": "number", "minimum": 0, "maximum": 2},
            "max_tokens": {
                "description": "Upper bound on the tokens the model may generate.",
                "type": "integer",
                "minimum": 1,
                "maximum": 200_000,
            },
            "format": {
                "description": "Format of the generated content.",
                "enum": ["markdown", "text", "json"],
                "default": "markdown",
            },
            "title": {
                "description": "Title of the generated document (template).",
                "type": "string",
                "maxLength": 1000,
            },
        },
    }
