"""What the guarded client raises: permanent for a refused or oversized exchange, transient for the network."""

from workflows.engine.errors import PermanentError, TransientError


class EgressForbidden(PermanentError):
    """The destination is refused: scheme, credentials in the URL, a non-public address, or a redirect to one."""


class EgressResponseTooLarge(PermanentError):
    """The response body grew past the caller's (or the setting's) limit; reading stopped there."""


class EgressTooManyRedirects(PermanentError):
    """The server redirected more than `max_redirects` times."""


class EgressConnectionError(TransientError):
    """DNS failure, refused or reset connection, TLS failure."""


class EgressTimeout(TransientError):
    """Connecting, sending or receiving took longer than the timeout."""
