from workflows.engine.errors import PermanentError
from workflows.engine.nodes.base import NodeResult, NodeType
from workflows.engine.nodes.schema import credential_name


class DocumentNode(NodeType):
    """Render the node's prompt and ask a provider's model to write a document from it.

    The `template` provider needs no model or credential: the rendered prompt is the document. The
    output is a Document (title, content, usage), stored with its lineage.
    """

    name = "document"
    description = "Generates a document by sending the rendered prompt to a language model provider."
    uses_prompt = True
    queue = "generation"
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

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult:
        config = prepared["config"]
        provider = config.get("provider", "template")
        if provider != "template":
            raise PermanentError(PROVIDER_UNAVAILABLE.format(provider=provider))
        content = prepared["prompt"]
        return NodeResult(
            output={
                "title": config.get("title") or prepared["title"],
                "content": content,
                "format": config.get("format", "markdown"),
                "provider": "template",
            },
            usage={"tokens_in": 0, "tokens_out": 0, "cost": 0},
        )


# Language-model providers (openai, anthropic) arrive with the document-generation issue.
PROVIDER_UNAVAILABLE = "The {provider!r} provider is not available on this server yet; use the template provider."
