"""What the official-SDK providers (openai, anthropic) share: the key check, a client whose requests go
through `egress.sdk_transport.http_client`, one call or a stream, and the SDK's errors translated into ours.

A subclass names its SDK (module, error class, client class) and says how to build the arguments and
the Generation.
"""

import importlib
import time
from abc import ABC, abstractmethod
from types import ModuleType
from typing import Any, ClassVar

import httpx2

from workflows.engine.egress.sdk_transport import http_client
from workflows.engine.errors import PermanentError, StepError
from workflows.engine.providers import sdk_errors
from workflows.engine.providers.base import Connection, DeltaCallback, Generation, GenerationRequest


class SDKProvider(ABC):
    name: ClassVar[str]
    default_model: ClassVar[str]
    label: ClassVar[str]  # how messages name the provider
    sdk_module: ClassVar[str]  # "openai"
    sdk_error: ClassVar[str]  # the SDK's base exception class: "OpenAIError"
    sdk_client: ClassVar[str]  # the SDK's synchronous client class: "OpenAI"

    def generate(
        self,
        request: GenerationRequest,
        connection: Connection,
        *,
        timeout: float,
        on_delta: DeltaCallback | None = None,
    ) -> Generation:
        if not connection.api_key:
            # Without one the SDK would fall back to the server's own key (its environment, profiles
            # on disk): the operator's account, paying for a workspace's calls.
            raise PermanentError(sdk_errors.API_KEY_MISSING.format(provider=self.label))
        sdk = self.sdk()
        started = time.monotonic()
        arguments = self.arguments(request, connection, sdk)
        try:
            with self.client(sdk, connection, http_client=http_client(timeout), timeout=timeout) as client:
                if on_delta is None:
                    return self.complete(client, arguments, started)
                return self.stream(client, arguments, StreamedText(started, on_delta))
        except StepError:
            raise
        except (self.base_error(sdk), httpx2.HTTPError) as error:
            raise sdk_errors.translated(
                error, sdk=sdk, provider=self.label, api_key=connection.api_key, timeout=timeout
            ) from error

    # --- what a subclass says ----------------------------------------------------------------------

    def sdk(self) -> ModuleType:
        """The SDK module, imported on first use: it takes about a second to import, which only the
        processes that call a model should pay."""
        return importlib.import_module(self.sdk_module)

    def base_error(self, sdk: ModuleType) -> type[Exception]:
        return getattr(sdk, self.sdk_error)

    def client(self, sdk: ModuleType, connection: Connection, *, http_client: httpx2.Client, timeout: float) -> Any:
        # max_retries=0: retries are the node's retry policy, not the SDK's hidden ones.
        return getattr(sdk, self.sdk_client)(
            api_key=connection.api_key,
            base_url=connection.base_url or None,
            http_client=http_client,
            max_retries=0,
            timeout=timeout,
            **self.client_options(connection),
        )

    def client_options(self, connection: Connection) -> dict[str, Any]:
        """Arguments of the client besides the key, base URL, HTTP client, retries and timeout."""
        return {}

    @abstractmethod
    def arguments(self, request: GenerationRequest, connection: Connection, sdk: ModuleType) -> dict[str, Any]: ...

    @abstractmethod
    def complete(self, client: Any, arguments: dict[str, Any], started: float) -> Generation: ...

    @abstractmethod
    def stream(self, client: Any, arguments: dict[str, Any], text: "StreamedText") -> Generation: ...


class StreamedText:
    """The text of a streamed answer as it arrives: handed on piece by piece, timed from the start."""

    def __init__(self, started: float, on_delta: DeltaCallback):
        self.started, self.on_delta = started, on_delta
        self.parts: list[str] = []
        self.first_token_ms: float | None = None

    def add(self, piece: str) -> None:
        if self.first_token_ms is None:
            self.first_token_ms = (time.monotonic() - self.started) * 1000
        self.parts.append(piece)
        self.on_delta(piece)

    def generation(
        self, *, tokens_in: int, tokens_out: int, finish_reason: str, model: str, response_id: str
    ) -> Generation:
        return Generation(
            text="".join(self.parts),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=(time.monotonic() - self.started) * 1000,
            finish_reason=finish_reason,
            model=model,
            details={"response_id": response_id, "first_token_ms": self.first_token_ms},
        )
