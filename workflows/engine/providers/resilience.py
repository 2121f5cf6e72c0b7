"""What wraps every networked provider call the same way: result cache, circuit breaker, retries.

The breaker and the cache live in Django's cache (Redis in the distributed mode), so every worker
process sees the same state. The breaker is per provider and base URL: one broken vLLM server does
not stop calls to OpenAI. Its state is three keys: a count of failed attempts in a row, the time the
circuit stays open until, and a half-open trial marker that only one caller can add.
"""

import hashlib
import itertools
import json
import logging
import math
import random
import time
from dataclasses import asdict

from django.conf import settings
from django.core.cache import cache

from core.metrics import generation_cache_hits_total
from workflows.engine.errors import TransientError
from workflows.engine.providers.base import (
    Connection,
    DeltaCallback,
    Generation,
    GenerationRequest,
    Provider,
    RestartCallback,
)

logger = logging.getLogger(__name__)

CIRCUIT_OPEN = "provider circuit open: {provider} failed repeatedly; calls resume in {seconds:.0f} s"
CIRCUIT_TRIAL = "provider circuit open: a trial call to {provider} is deciding whether it works again"
# The open marker outlives its period so that the first call after it, however late, is the trial.
OPEN_MARKER_EXTRA_SECONDS = 86400
# A trial whose caller died is forgotten after the call's timeout and this much more.
TRIAL_GRACE_SECONDS = 10
# Failures older than this many breaker periods no longer count as "in a row".
FAILURE_MEMORY_PERIODS = 10
CACHED_FIELDS = ("text", "tokens_in", "tokens_out", "finish_reason", "model", "details")


class CircuitOpenError(TransientError):
    """Calls to this provider are paused after repeated failures; nothing was sent."""


def resilient_generate(
    name: str,
    provider: Provider,
    request: GenerationRequest,
    connection: Connection,
    *,
    on_delta: DeltaCallback | None,
    on_restart: RestartCallback | None,
    use_cache: bool,
) -> Generation:
    """`providers.generate` for a networked provider; see there."""
    key = _cache_key(name, request, connection) if use_cache else None
    if key is not None:
        started = time.monotonic()
        stored = cache.get(key)
        if stored is not None:
            generation_cache_hits_total.labels(provider=name).inc()
            if on_delta is not None and stored["text"]:
                on_delta(stored["text"])
            return Generation(**stored, latency_ms=(time.monotonic() - started) * 1000, cached=True)
    generation = _with_retries(name, provider, request, connection, on_delta=on_delta, on_restart=on_restart)
    if key is not None:
        stored = {field: value for field, value in asdict(generation).items() if field in CACHED_FIELDS}
        cache.set(key, stored, settings.DWC_GENERATION_CACHE_SECONDS)
    return generation


def _with_retries(
    name: str,
    provider: Provider,
    request: GenerationRequest,
    connection: Connection,
    *,
    on_delta: DeltaCallback | None,
    on_restart: RestartCallback | None,
) -> Generation:
    breaker = _Breaker(name, connection.base_url)
    timeout = settings.DWC_PROVIDER_TIMEOUT_SECONDS
    for attempt in itertools.count():
        trial = breaker.before_attempt()
        streamed = False

        def forward(delta: str) -> None:
            nonlocal streamed
            streamed = True
            on_delta(delta)

        try:
            generation = provider.generate(
                request, connection, timeout=timeout, on_delta=forward if on_delta is not None else None
            )
        except TransientError as error:
            breaker.failed(trial)
            failure = error
        except BaseException:
            # A permanent refusal, or the caller's callback failing: the provider itself answered.
            breaker.succeeded(trial)
            raise
        else:
            breaker.succeeded(trial)
            return generation
        delay = _retry_delay(failure, attempt)
        if delay is None:
            raise failure
        logger.info(
            "provider call failed, retrying",
            extra={"provider": name, "attempt": attempt + 1, "delay": round(delay, 3), "error": failure.message},
        )
        if streamed and on_restart is not None:
            on_restart()
        time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _retry_delay(error: TransientError, attempt: int) -> float | None:
    """Seconds to wait before the next attempt, or None to give up and leave it to the step's retry policy."""
    if attempt >= settings.DWC_PROVIDER_MAX_RETRIES:
        return None
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= settings.DWC_PROVIDER_MAX_RETRY_AFTER_SECONDS else None
    # Full jitter: callers that failed together do not come back together.
    return random.uniform(0, settings.DWC_PROVIDER_BACKOFF_SECONDS * 2**attempt)  # noqa: S311 (jitter, not a secret)


def _cache_key(name: str, request: GenerationRequest, connection: Connection) -> str:
    canonical = json.dumps(
        {
            "provider": name,
            "base_url": connection.base_url,
            "model": request.model,
            "messages": [[message.role, message.content] for message in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "json_output": request.json_output,
            # Results are shared by whoever holds the same key, never across accounts (workspaces).
            "account": hashlib.sha256(connection.api_key.encode()).hexdigest(),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return "generation:" + hashlib.sha256(canonical.encode()).hexdigest()


class _Breaker:
    """A circuit breaker kept in Django's cache; `add` and `incr` make its changes safe across processes."""

    def __init__(self, name: str, base_url: str):
        self.name = name
        digest = hashlib.sha256(f"{name}\n{base_url}".encode()).hexdigest()[:32]
        self.failures_key = f"provider-breaker:{digest}:failures"
        self.open_key = f"provider-breaker:{digest}:open-until"
        self.trial_key = f"provider-breaker:{digest}:trial"

    def before_attempt(self) -> bool:
        """Raise CircuitOpenError while open; return True for the one caller let through as the half-open trial."""
        open_until = cache.get(self.open_key)
        if open_until is None:
            return False
        remaining = open_until - time.time()
        if remaining > 0:
            raise CircuitOpenError(CIRCUIT_OPEN.format(provider=self.name, seconds=remaining), retry_after=remaining)
        trial_seconds = math.ceil(settings.DWC_PROVIDER_TIMEOUT_SECONDS + TRIAL_GRACE_SECONDS)
        if cache.add(self.trial_key, True, trial_seconds):
            return True
        raise CircuitOpenError(CIRCUIT_TRIAL.format(provider=self.name))

    def succeeded(self, trial: bool) -> None:
        cache.delete_many([self.failures_key, self.open_key, self.trial_key] if trial else [self.failures_key])

    def failed(self, trial: bool) -> None:
        if trial:
            self._open()
            cache.delete(self.trial_key)
            return
        memory = math.ceil(settings.DWC_PROVIDER_BREAKER_SECONDS * FAILURE_MEMORY_PERIODS)
        cache.add(self.failures_key, 0, memory)
        try:
            failures = cache.incr(self.failures_key)
        except ValueError:  # expired between add and incr
            cache.set(self.failures_key, 1, memory)
            failures = 1
        if failures >= settings.DWC_PROVIDER_BREAKER_FAILURES:
            self._open()
            cache.delete(self.failures_key)

    def _open(self) -> None:
        period = settings.DWC_PROVIDER_BREAKER_SECONDS
        cache.set(self.open_key, time.time() + period, math.ceil(period + OPEN_MARKER_EXTRA_SECONDS))
        logger.warning("provider circuit opened", extra={"provider": self.name, "seconds": period})
