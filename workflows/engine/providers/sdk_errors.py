"""What the vendor SDKs raise, as our errors: retry (TransientError) or give up (PermanentError).

Both SDKs (openai, anthropic) share one exception hierarchy by name, so one function serves both;
the provider passes its SDK module. Messages name the provider and the status and quote the
server's own error message, with the API key cut out: OpenAI, for one, echoes part of a wrong key.
"""

import math
from collections.abc import Mapping
from types import ModuleType

import httpx2

from core.retry_after import retry_after_seconds as parse_retry_after
from workflows.engine.errors import PermanentError, StepError, TransientError

API_KEY_MISSING = "the {provider} provider needs a credential with an API key"
KEY_REJECTED = "{provider} rejected the API key (401); check the credential"
ACCESS_DENIED = "{provider} refused access (403): {detail}"
QUOTA_EXHAUSTED = "{provider} says the account has no quota left (429): {detail}"
REQUEST_REJECTED = "{provider} rejected the request ({status}): {detail}"
SERVER_FAILED = "{provider} answered {status}: {detail}"
STREAM_FAILED = "{provider} broke off the answer: {detail}"
TIMED_OUT = "{provider} did not answer within {timeout:g} s"
CONNECTION_FAILED = "could not reach {provider}: {reason}"
NO_DETAILS = "no details given"
REDACTED = "[redacted]"

# 408 and 409 are what these APIs send for a request that timed out or lost a race on their side;
# the SDKs retry them too.
TRANSIENT_STATUSES = frozenset({408, 409, 429})
DETAIL_LIMIT = 300
# Following __cause__ further than this means a cycle or something stranger; stop there.
CAUSE_DEPTH = 10


def translated(error: Exception, *, sdk: ModuleType, provider: str, api_key: str, timeout: float) -> StepError:
    """Our error for one raised by a provider call, in `send` or while a stream was read.

    An egress error under the SDK's (a refused destination, an oversized body) is returned as it is.
    """
    own = _own_cause(error)
    if own is not None:
        return own
    if isinstance(error, sdk.APITimeoutError | httpx2.TimeoutException):
        return TransientError(TIMED_OUT.format(provider=provider, timeout=timeout))
    if isinstance(error, sdk.APIStatusError):
        return _from_status(error, provider=provider, api_key=api_key)
    if isinstance(error, sdk.APIConnectionError | httpx2.TransportError):
        reason = _scrubbed(str(error.__cause__ or error), api_key) or type(error).__name__
        return TransientError(CONNECTION_FAILED.format(provider=provider, reason=reason))
    if isinstance(error, sdk.APIError):
        # An error event in the middle of a stream: the answer so far is lost, the next one may work.
        return TransientError(STREAM_FAILED.format(provider=provider, detail=_detail(error.body, api_key)))
    return PermanentError(_scrubbed(str(error), api_key) or type(error).__name__)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """How long the server asked us to wait: `retry-after-ms` (OpenAI's), else Retry-After in seconds or as a date."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            seconds = float(milliseconds) / 1000
        except ValueError:
            pass
        else:
            if math.isfinite(seconds) and seconds >= 0:
                return seconds
    return parse_retry_after(headers.get("retry-after"))


def _from_status(error, *, provider: str, api_key: str) -> StepError:
    status = error.status_code
    detail = _detail(error.body, api_key)
    if status < 400:
        # The SDK raises a status error for an error event inside a 200 stream.
        return TransientError(STREAM_FAILED.format(provider=provider, detail=detail), details={"status": status})
    if status == 429 and _error_field(error.body, "code") == "insufficient_quota":
        return PermanentError(QUOTA_EXHAUSTED.format(provider=provider, detail=detail), details={"status": status})
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientError(
            SERVER_FAILED.format(provider=provider, status=status, detail=detail),
            details={"status": status},
            retry_after=retry_after_seconds(error.response.headers),
        )
    if status == 401:
        return PermanentError(KEY_REJECTED.format(provider=provider), details={"status": status})
    if status == 403:
        return PermanentError(ACCESS_DENIED.format(provider=provider, detail=detail), details={"status": status})
    return PermanentError(
        REQUEST_REJECTED.format(provider=provider, status=status, detail=detail), details={"status": status}
    )


def _own_cause(error: BaseException) -> StepError | None:
    for _ in range(CAUSE_DEPTH):
        if isinstance(error, StepError):
            return error
        if error.__cause__ is None:
            return None
        error = error.__cause__
    return None


def _error_field(body: object, name: str) -> object:
    """A field of the error object: OpenAI nests it under "error", Anthropic under "error" of a typed envelope."""
    if not isinstance(body, Mapping):
        return None
    inner = body.get("error", body)
    return inner.get(name) if isinstance(inner, Mapping) else None


def _detail(body: object, api_key: str) -> str:
    message = _error_field(body, "message")
    if not isinstance(message, str):
        message = body if isinstance(body, str) else ""
    return _scrubbed(message, api_key)[:DETAIL_LIMIT] or NO_DETAILS


def _scrubbed(text: str, api_key: str) -> str:
    return text.replace(api_key, REDACTED).strip() if api_key else text.strip()
