"""OpenAI Chat Completions through the official SDK: OpenAI itself, Azure, vLLM, Ollama, LM Studio and the like.

Every request goes out through `egress.sdk_transport.http_client`, so a credential's `base_url` reaches a private
address only if the operator allow-listed it.
"""

import time
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from workflows.engine.providers.base import Connection, Generation, GenerationRequest
from workflows.engine.providers.sdk import SDKProvider, StreamedText

if TYPE_CHECKING:
    import openai


class OpenAIProvider(SDKProvider):
    name: ClassVar[str] = "openai"
    default_model: ClassVar[str] = "gpt-5.4-mini"
    label: ClassVar[str] = "OpenAI"
    sdk_module: ClassVar[str] = "openai"
    sdk_error: ClassVar[str] = "OpenAIError"
    sdk_client: ClassVar[str] = "OpenAI"

    def client_options(self, connection: Connection) -> dict[str, Any]:
        return {"organization": connection.organization or None}

    def arguments(self, request: GenerationRequest, connection: Connection, sdk: ModuleType) -> dict[str, Any]:
        return _arguments(request, connection, omit=sdk.omit)

    def complete(self, client: "openai.OpenAI", arguments: dict[str, Any], started: float) -> Generation:
        completion = client.chat.completions.create(**arguments)
        choice = completion.choices[0] if completion.choices else None
        usage = completion.usage
        return Generation(
            text=(choice.message.content if choice else None) or "",
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
            latency_ms=(time.monotonic() - started) * 1000,
            finish_reason=(choice.finish_reason if choice else None) or "",
            model=completion.model or arguments["model"],
            details={"response_id": completion.id},
        )

    def stream(self, client: "openai.OpenAI", arguments: dict[str, Any], text: StreamedText) -> Generation:
        tokens_in = tokens_out = 0
        finish_reason = model = response_id = ""
        stream = client.chat.completions.create(**arguments, stream=True, stream_options={"include_usage": True})
        with stream:
            for chunk in stream:
                model = chunk.model or model
                response_id = chunk.id or response_id
                if chunk.usage:
                    # With include_usage the last chunk carries the usage and no choices.
                    tokens_in, tokens_out = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    if choice.delta and choice.delta.content:
                        text.add(choice.delta.content)
                    finish_reason = choice.finish_reason or finish_reason
        return text.generation(
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            finish_reason=finish_reason,
            model=model or arguments["model"],
            response_id=response_id,
        )


def _arguments(request: GenerationRequest, connection: Connection, *, omit: object) -> dict[str, Any]:
    """The create() arguments; `omit` is the SDK's marker for a header not to send."""
    arguments: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": message.role, "content": message.content} for message in request.messages],
        # The server's OPENAI_PROJECT_ID (and OPENAI_ORG_ID when the credential names no organization)
        # describe the operator's account, which the SDK would otherwise send with the workspace's key.
        "extra_headers": {
            "OpenAI-Project": omit,
            **({} if connection.organization else {"OpenAI-Organization": omit}),
        },
    }
    if request.temperature is not None:
        arguments["temperature"] = request.temperature
    if request.max_tokens is not None:
        # OpenAI's reasoning models refuse max_tokens and take max_completion_tokens; compatible
        # servers (vLLM, Ollama, LM Studio), reached through a base_url, know max_tokens best.
        arguments["max_tokens" if connection.base_url else "max_completion_tokens"] = request.max_tokens
    if request.json_output:
        arguments["response_format"] = {"type": "json_object"}
    return arguments
