"""Language-model providers for document nodes: the registry and `generate`, the one way to call them."""

from django.conf import settings

from workflows.engine.errors import PermanentError
from workflows.engine.providers.anthropic import AnthropicProvider
from workflows.engine.providers.base import (
    Connection,
    DeltaCallback,
    Generation,
    GenerationRequest,
    Provider,
    RestartCallback,
)
from workflows.engine.providers.openai import OpenAIProvider
from workflows.engine.providers.resilience import CircuitOpenError, resilient_generate
from workflows.engine.providers.template import TemplateProvider

PROVIDERS: dict[str, Provider] = {
    "template": TemplateProvider(),
    "openai": OpenAIProvider(),
    "anthropic": AnthropicProvider(),
}
# Providers that call nothing, so there is nothing to retry, break or cache.
OFFLINE_PROVIDERS = frozenset({"template"})

UNKNOWN_PROVIDER = "unknown provider {provider!r}; known: {known}"

__all__ = ["PROVIDERS", "CircuitOpenError", "generate"]


def generate(
    provider: str,
    request: GenerationRequest,
    connection: Connection,
    *,
    on_delta: DeltaCallback | None = None,
    on_restart: RestartCallback | None = None,
    use_cache: bool = False,
) -> Generation:
    """Ask `provider` for a generation, with the timeout, retries, circuit breaker and cache of the settings.

    With `on_delta` the provider streams and `on_delta` gets each piece of text as it arrives. When
    an attempt fails after some text was streamed and another attempt follows, `on_restart` is
    called first: the text so far is void and the next attempt streams from the start (a caller
    that passes `on_delta` should pass it). A cache hit calls `on_delta` once with the whole text.

    Transient failures (429, 5xx, timeouts, connection errors) are retried up to
    DWC_PROVIDER_MAX_RETRIES times with jittered exponential backoff, or after the server's
    Retry-After; a Retry-After longer than DWC_PROVIDER_MAX_RETRY_AFTER_SECONDS ends the call at once,
    leaving the wait to the step's retry policy (which waits it out, up to DWC_RETRY_AFTER_MAX_SECONDS).
    Raises TransientError (CircuitOpenError without any
    call while the provider's circuit is open) or PermanentError (rejected key or request, refused
    destination, unknown provider). The API key never appears in an error, a log line or the
    Generation.
    """
    implementation = PROVIDERS.get(provider)
    if implementation is None:
        raise PermanentError(UNKNOWN_PROVIDER.format(provider=provider, known=", ".join(sorted(PROVIDERS))))
    if provider in OFFLINE_PROVIDERS:
        return implementation.generate(
            request, connection, timeout=settings.DWC_PROVIDER_TIMEOUT_SECONDS, on_delta=on_delta
        )
    return resilient_generate(
        provider,
        implementation,
        request,
        connection,
        on_delta=on_delta,
        on_restart=on_restart,
        use_cache=use_cache,
    )
