"""Anthropic's Messages API through the official SDK, its requests sent through `egress.sdk_transport.http_client`."""

import time
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings

from workflows.engine.providers.base import Connection, Generation, GenerationRequest
from workflows.engine.providers.sdk import SDKProvider, StreamedText

if TYPE_CHECKING:
    import anthropic

# The Messages API has no JSON mode without a schema; asking in the system prompt is what works.
JSON_HINT = "Answer with one JSON object and nothing else: no prose, no code fence."


class AnthropicProvider(SDKProvider):
    name: ClassVar[str] = "anthropic"
    default_model: ClassVar[str] = "claude-sonnet-4-6"
    label: ClassVar[str] = "Anthropic"
    sdk_module: ClassVar[str] = "anthropic"
    sdk_error: ClassVar[str] = "AnthropicError"
    sdk_client: ClassVar[str] = "Anthropic"

    def arguments(self, request: GenerationRequest, connection: Connection, sdk: ModuleType) -> dict[str, Any]:
        return _arguments(request)

    def complete(self, client: "anthropic.Anthropic", arguments: dict[str, Any], started: float) -> Generation:
        message = client.messages.create(**arguments)
        return Generation(
            text="".join(block.text for block in message.content if block.type == "text"),
            tokens_in=message.usage.input_tokens,
            tokens_out=message.usage.output_tokens,
            latency_ms=(time.monotonic() - started) * 1000,
            finish_reason=message.stop_reason or "",
            model=message.model or arguments["model"],
            details={"response_id": message.id},
        )

    def stream(self, client: "anthropic.Anthropic", arguments: dict[str, Any], text: StreamedText) -> Generation:
        tokens_in = tokens_out = 0
        finish_reason = model = response_id = ""
        with client.messages.create(**arguments, stream=True) as stream:
            for event in stream:
                if event.type == "message_start":
                    model, response_id = event.message.model, event.message.id
                    tokens_in, tokens_out = event.message.usage.input_tokens, event.message.usage.output_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    text.add(event.delta.text)
                elif event.type == "message_delta":
                    finish_reason = event.delta.stop_reason or finish_reason
                    # The counts in message_delta are cumulative; input_tokens only when it changed.
                    tokens_out = event.usage.output_tokens
                    tokens_in = event.usage.input_tokens or tokens_in
        return text.generation(
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            finish_reason=finish_reason,
            model=model or arguments["model"],
            response_id=response_id,
        )


def _arguments(request: GenerationRequest) -> dict[str, Any]:
    system = [message.content for message in request.messages if message.role == "system"]
    if request.json_output:
        system.append(JSON_HINT)
    arguments: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or settings.DWC_ANTHROPIC_MAX_TOKENS,
        "messages": [
            {"role": message.role, "content": message.content}
            for message in request.messages
            if message.role != "system"
        ],
    }
    if system:
        arguments["system"] = "\n\n".join(system)
    if request.temperature is not None:
        # This SDK version has no `temperature` argument; the value goes as given, and a model that
        # does not take it answers 400, which says so.
        arguments["extra_body"] = {"temperature": request.temperature}
    return arguments
