"""What every language-model provider takes and gives: one small interface, three implementations.

A provider turns messages + model + parameters into text with its usage. Resilience (retries,
circuit breaker, result cache) wraps every provider the same way in `providers.generate`, so an
implementation only speaks its API.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol

Role = Literal["system", "user", "assistant"]
# Called with each new piece of text while a provider streams.
DeltaCallback = Callable[[str], None]
# Called when text already streamed is void because the call is tried again from the start.
RestartCallback = Callable[[], None]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Connection:
    """Where and as whom to call: from the node's credential (never logged, never stored in outputs)."""

    api_key: str = ""
    base_url: str = ""  # empty: the provider's public API
    organization: str = ""


@dataclass(frozen=True)
class GenerationRequest:
    model: str
    # In order: an optional system message first, then the conversation, the prompt last.
    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    # Ask the model for a JSON object (OpenAI `response_format`; a system hint elsewhere).
    json_output: bool = False


@dataclass
class Generation:
    text: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    finish_reason: str  # "stop", "length", ... as the provider reports it
    model: str  # the model that answered, as reported
    cached: bool = False  # served from the result cache: no provider call, no cost
    details: dict = field(default_factory=dict)


class Provider(Protocol):
    name: ClassVar[str]
    # The model used when a node names none.
    default_model: ClassVar[str]

    def generate(
        self,
        request: GenerationRequest,
        connection: Connection,
        *,
        timeout: float,
        on_delta: DeltaCallback | None = None,
    ) -> Generation:
        """One call, no retries: streams (calling `on_delta`) when `on_delta` is given.

        Raises workflows.engine.errors.TransientError for what may succeed later (429, 5xx,
        timeouts, connection errors; `retry_after` set when the server said how long to wait)
        and PermanentError for what will not (401, 400, refused destination).
        """
        ...
