"""Why a step failed, by type: the engine retries a TransientError and gives up on a PermanentError."""


class StepError(Exception):
    """A step failed. `retryable` says whether another attempt may succeed."""

    retryable = True

    def __init__(self, message: str, *, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class TransientError(StepError):
    """Another attempt may succeed: a timeout, a refused connection, a 429 or 5xx answer.

    `retry_after` is how many seconds the other side asked us to wait (Retry-After), when it said.
    """

    retryable = True

    def __init__(self, message: str, *, details: dict | None = None, retry_after: float | None = None):
        super().__init__(message, details=details)
        self.retry_after = retry_after


class PermanentError(StepError):
    """Trying again cannot help: a bad template, a forbidden destination, a rejected approval."""

    retryable = False
