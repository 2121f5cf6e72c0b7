"""The offline provider: no model, no call. The document is the prompt as rendered (the last user message)."""

from typing import ClassVar

from workflows.engine.providers.base import Connection, DeltaCallback, Generation, GenerationRequest


class TemplateProvider:
    name: ClassVar[str] = "template"
    default_model: ClassVar[str] = "template"

    def generate(
        self,
        request: GenerationRequest,
        connection: Connection,
        *,
        timeout: float,
        on_delta: DeltaCallback | None = None,
    ) -> Generation:
        text = next((message.content for message in reversed(request.messages) if message.role == "user"), "")
        if on_delta is not None and text:
            on_delta(text)
        return Generation(
            text=text, tokens_in=0, tokens_out=0, latency_ms=0.0, finish_reason="stop", model=request.model
        )
