import json
from decimal import Decimal

from django.conf import settings

from workflows.credentials import credential_kind_and_value
from workflows.engine import json_schema, pricing, providers
from workflows.engine.errors import PermanentError, TransientError
from workflows.engine.nodes.base import (
    PROMPT_OVERRIDE,
    REVIEW_COMMENT,
    REVIEW_DRAFT,
    NodeResult,
    NodeType,
    StepContext,
)
from workflows.engine.nodes.schema import credential_name
from workflows.engine.providers.base import Connection, GenerationRequest, Message

MODEL_PROVIDERS = ("openai", "anthropic")
# No tokenizer ships offline for every model (tiktoken downloads its encodings at first use): the
# context and the budgets count about four characters per token, and a few more per message.
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4

PROVIDER_MISMATCH = "The node says provider {provider!r}, but credential {name!r} is for {kind!r}."
PROVIDER_NEEDS_CREDENTIAL = "The {provider!r} provider needs a `credential` naming the workspace's API key."
CONTEXT_NOT_UPSTREAM = "`context` names {key!r}, which is not an upstream step with a document."
NOT_JSON = "The model's output is not valid JSON: {error}"
SCHEMA_VIOLATION = "The model's output does not satisfy `json_schema` at {path}: {message}"
UNUSABLE_SCHEMA = "`json_schema` cannot be applied: {problem}"
# How a reviewer's request for changes reaches the model: after the prompt, its draft under review as
# its own earlier answer, then this (plain text: a person's words, never a template).
REVISION_REQUEST = (
    "A reviewer asked for changes to your previous version:\n{comment}\n\n"
    "Write the whole document again with these changes."
)


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


class DocumentNode(NodeType):
    """Render the node's prompt and ask a language model to write a document from it.

    Without a credential the `template` provider answers: the rendered prompt is the document, so
    chains run offline. With one, its kind (openai or anthropic) picks the provider. The model sees
    the system text, then its ancestors' documents (oldest first, within a token budget), then the
    prompt. The result is stored as a Document, versioned per (workflow, node key).
    """

    name = "document"
    group = "documents"
    example = {
        "key": "outline",
        "title": "Outline",
        "prompt": "Write an outline for a post about {{ input.topic }}.",
        "config": {"provider": "openai", "model": "gpt-4o-mini", "max_tokens": 800},
    }
    description = "Generates a document by sending the rendered prompt to a language model provider."
    uses_prompt = True
    uses_context = True
    spends = True
    queue = "generation"
    requires_prompt = True
    template_fields = ("system", "title")
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "provider": {
                "description": "Who writes the document; by default the credential's kind, or `template` "
                "(the rendered prompt is the document) when there is no credential.",
                "enum": ["template", *MODEL_PROVIDERS],
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
            "json_schema": {
                "description": "With format json: a JSON Schema the output must satisfy (else the attempt fails "
                "and is retried).",
                "type": "object",
            },
            "context": {
                "description": "Earlier documents given to the model: `ancestors` (all upstream documents, "
                "oldest first), `none`, or a list of upstream node keys.",
                "oneOf": [
                    {"enum": ["ancestors", "none"]},
                    {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 100},
                ],
                "default": "ancestors",
            },
            "context_tokens": {
                "description": "Token budget for the context documents; the oldest are dropped first.",
                "type": "integer",
                "minimum": 0,
                "maximum": 2_000_000,
            },
            "title": {
                "description": "Title of the generated document (template); the node's title by default.",
                "type": "string",
                "maxLength": 1000,
            },
            "cache": {
                "description": "Reuse the stored result of an identical earlier request instead of calling the "
                "provider.",
                "type": "boolean",
                "default": False,
            },
        },
    }

    @classmethod
    def validate(cls, *, config: dict, prompt: str = "", content: str = "") -> tuple[dict, dict]:
        config, errors = super().validate(config=config, prompt=prompt, content=content)
        if not errors and "json_schema" in config:
            problems = json_schema.schema_problems(config["json_schema"])
            if problems:
                errors["config.json_schema"] = problems
        return config, errors

    @classmethod
    def prepare(cls, node: dict, context: StepContext) -> dict:
        # A regeneration may replace the prompt for this step (the engine keeps it in its state).
        override = context.state.get(PROMPT_OVERRIDE)
        prepared = super().prepare(node if override is None else {**node, "prompt": override}, context)
        if override is not None:
            prepared["prompt_override"] = override
        # Kept apart from the rendered prompt: the comment is a person's words, never a template.
        comment = context.state.get(REVIEW_COMMENT)
        if comment:
            prepared["review_comment"] = comment
            prepared["review_draft"] = context.state.get(REVIEW_DRAFT) or ""
        return prepared

    @classmethod
    def spending_estimate(cls, prepared: dict, context: StepContext) -> tuple[int, Decimal] | None:
        """The prompt's tokens (the character heuristic: no tokenizer ships offline for every model)
        plus the most the model may write (`max_tokens`, else DWC_BUDGET_DEFAULT_MAX_TOKENS), and their
        price. The template provider spends nothing."""
        provider, _ = _provider_and_connection(prepared["config"], context.workspace_id)
        if provider == "template":
            return None
        request, _ = _request(prepared, context, provider)
        tokens_in = sum(estimate_tokens(message.content) + MESSAGE_OVERHEAD_TOKENS for message in request.messages)
        tokens_out = request.max_tokens or settings.DWC_BUDGET_DEFAULT_MAX_TOKENS
        return tokens_in + tokens_out, pricing.cost(provider, request.model, tokens_in, tokens_out)

    @classmethod
    def spent(cls, usage: dict) -> tuple[int, Decimal] | None:
        tokens = int(usage.get("tokens_in") or 0) + int(usage.get("tokens_out") or 0)
        return tokens, Decimal(str(usage.get("cost") or 0))

    @classmethod
    def execute(cls, prepared: dict, context: StepContext) -> NodeResult:
        config = prepared["config"]
        provider, connection = _provider_and_connection(config, context.workspace_id)
        request, truncation = _request(prepared, context, provider)
        documents = truncation.pop("sent")
        generation = providers.generate(
            provider,
            request,
            connection,
            on_delta=context.stream.write if context.stream and provider != "template" else None,
            on_restart=context.stream.restart if context.stream and provider != "template" else None,
            use_cache=bool(config.get("cache")),
        )
        output_format = config.get("format", "markdown")
        output = {
            "title": config.get("title") or prepared["title"] or context.node_key,
            "content": generation.text,
            "format": output_format,
            "provider": provider,
            "model": generation.model or request.model,
        }
        if output_format == "json":
            output["data"] = _parsed_json(generation.text, config.get("json_schema"))
        cost = (
            0
            if generation.cached
            else pricing.cost(provider, output["model"], generation.tokens_in, generation.tokens_out)
        )
        usage = {
            "provider": provider,
            "model": output["model"],
            "tokens_in": generation.tokens_in,
            "tokens_out": generation.tokens_out,
            "cost": float(cost),
            "latency_ms": round(generation.latency_ms, 3),
            "cached": generation.cached,
        }
        metadata = {"finish_reason": generation.finish_reason, "cached": generation.cached, "context": truncation}
        if "prompt_override" in prepared:
            metadata["prompt"] = prepared["prompt_override"]
        if "review_comment" in prepared:
            metadata["review_comment"] = prepared["review_comment"]
        document = {
            **output,
            "tokens_in": generation.tokens_in,
            "tokens_out": generation.tokens_out,
            "cost": cost,
            "latency_ms": generation.latency_ms,
            "metadata": metadata,
            "source_ids": [doc["document_id"] for doc in documents if doc.get("document_id")],
        }
        return NodeResult(output=output, usage=usage, document=document)


def _request(prepared: dict, context: StepContext, provider: str) -> tuple[GenerationRequest, dict]:
    """What the model is sent: the system text, the context documents within their budget, the prompt
    (after a request for changes: then the draft under review as the model's answer, and the request);
    and the record of the documents sent and dropped (`sent`: the documents themselves)."""
    config = prepared["config"]
    documents, truncation = _context_documents(config, context.documents)
    messages = []
    if config.get("system"):
        messages.append(Message("system", config["system"]))
    messages += [Message("user", f"# {doc['title']}\n\n{doc['content']}") for doc in documents]
    messages.append(Message("user", prepared["prompt"]))
    if "review_comment" in prepared:
        if prepared["review_draft"]:
            messages.append(Message("assistant", prepared["review_draft"]))
        messages.append(Message("user", REVISION_REQUEST.format(comment=prepared["review_comment"])))
    request = GenerationRequest(
        model=config.get("model") or providers.PROVIDERS[provider].default_model,
        messages=tuple(messages),
        temperature=config.get("temperature"),
        max_tokens=config.get("max_tokens"),
        json_output=config.get("format") == "json",
    )
    return request, {**truncation, "sent": documents}


def _provider_and_connection(config: dict, workspace_id: str) -> tuple[str, Connection]:
    provider = config.get("provider")
    name = config.get("credential")
    if name is None:
        if provider in MODEL_PROVIDERS:
            raise PermanentError(PROVIDER_NEEDS_CREDENTIAL.format(provider=provider))
        return "template", Connection()
    kinds = (provider,) if provider in MODEL_PROVIDERS else MODEL_PROVIDERS
    kind, value = credential_kind_and_value(workspace_id=workspace_id, name=name, kinds=kinds)
    if provider == "template":
        raise PermanentError(PROVIDER_MISMATCH.format(provider=provider, name=name, kind=kind))
    return kind, Connection(
        api_key=value["api_key"], base_url=value.get("base_url", ""), organization=value.get("organization", "")
    )


def _context_documents(config: dict, ancestors: list[dict]) -> tuple[list[dict], dict]:
    """The documents to send, oldest first, and a record of what the budget left out."""
    wanted = config.get("context", "ancestors")
    if wanted == "none":
        chosen: list[dict] = []
    elif wanted == "ancestors":
        chosen = list(ancestors)
    else:
        by_key = {doc["node_key"]: doc for doc in ancestors}
        missing = [key for key in wanted if key not in by_key]
        if missing:
            raise PermanentError(CONTEXT_NOT_UPSTREAM.format(key=missing[0]))
        chosen = [by_key[key] for key in wanted]
    budget = config.get("context_tokens", settings.DWC_CONTEXT_TOKEN_BUDGET)
    kept = list(chosen)
    dropped = []
    while kept and sum(estimate_tokens(doc["content"]) for doc in kept) > budget:
        dropped.append(kept.pop(0)["node_key"])
    record = {
        "documents": [doc["node_key"] for doc in kept],
        "dropped": dropped,
        "budget_tokens": budget,
        "estimated_tokens": sum(estimate_tokens(doc["content"]) for doc in kept),
    }
    return kept, record


def _parsed_json(text: str, schema: dict | None):
    """The model's JSON output, parsed; a TransientError (the step retries) when it is not what was asked."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise TransientError(NOT_JSON.format(error=error)) from error
    if schema:
        try:
            errors = json_schema.schema_errors(schema, value)
        except json_schema.UnusableSchema as error:
            raise PermanentError(UNUSABLE_SCHEMA.format(problem=error)) from error
        if errors:
            path = "/" + "/".join(str(part) for part in errors[0].absolute_path)
            raise TransientError(SCHEMA_VIOLATION.format(path=path, message=errors[0].message))
    return value
