"""RFC 9457 problem details for every error the API returns.

DRF's exceptions go through `problem_exception_handler`; Django's own 404/500 under /api/ through
`api_not_found` and `server_error`, so no API client ever has to parse an HTML error page.
"""

import logging
import sys
from http import HTTPStatus

import redis
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import csrf, defaults
from rest_framework import exceptions
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler

PROBLEM_CONTENT_TYPE = "application/problem+json"
# What a client is told to wait when the database or Redis cannot be reached (a restart, a failover).
RETRY_AFTER_SECONDS = 5
UNAVAILABLE = "The service cannot reach its {dependency} right now; retry in a few seconds."

logger = logging.getLogger(__name__)


class ProblemResponse(JsonResponse):
    def __init__(self, status: int, detail: str, *, code: str | None = None, **extra):
        super().__init__(
            problem_body(status, detail, code=code, **extra), status=status, content_type=PROBLEM_CONTENT_TYPE
        )


class Conflict(Exception):
    """The request is valid but the resource's current state forbids it (409)."""


class _ConflictAPIException(exceptions.APIException):
    status_code = 409
    default_code = "conflict"


class _Unavailable(exceptions.APIException):
    status_code = 503
    default_code = "unavailable"
    wait = RETRY_AFTER_SECONDS  # DRF's exception handler turns it into Retry-After


def unavailable_dependency(error: BaseException | None) -> str | None:
    """ "database" or "cache" when `error` says that one cannot be reached: a 503 to retry, not a 500."""
    if isinstance(error, DatabaseOperationalError | DatabaseInterfaceError):
        return "database"
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return "cache"
    return None


def problem_body(status: int, detail: str, *, code: str | None = None, **extra) -> dict:
    title = HTTPStatus(status).phrase
    type_ = f"/problems/{code.replace('_', '-')}" if code else "about:blank"
    return {"type": type_, "title": title, "status": status, "detail": detail, **extra}


def flatten_errors(detail: object, prefix: str = "") -> dict[str, list[str]]:
    """{"nodes": [{"key": ["..."]}]} → {"nodes.0.key": ["..."]}: one flat map a form can show."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            flat.update(flatten_errors(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(detail, list) and detail and all(isinstance(item, str) for item in detail):
        flat[prefix or "non_field_errors"] = [str(item) for item in detail]
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if value:
                flat.update(flatten_errors(value, f"{prefix}.{index}" if prefix else str(index)))
    else:
        flat[prefix or "non_field_errors"] = [str(detail)]
    return flat


def _validation_summary(errors: dict[str, list[str]]) -> str:
    parts = [f"{field}: {' '.join(messages)}" for field, messages in errors.items()]
    return "Invalid input. " + "; ".join(parts)


def problem_exception_handler(exc: Exception, context: dict) -> Response | None:
    # Members a refusal adds to its problem (accounts.ip_allow_lists.IpNotAllowed: the `rule`).
    members = getattr(exc, "problem_members", None) or {}
    # Services raise Django's own exceptions (and Conflict) so that they stay usable outside DRF.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, PermissionDenied):
        # A subclass may name its problem type (accounts.access.MfaRequired: /problems/mfa-required).
        exc = exceptions.PermissionDenied(str(exc) or None, code=getattr(exc, "code", None))
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Conflict):
        exc = _ConflictAPIException(str(exc))
    elif dependency := unavailable_dependency(exc):
        # Authentication, throttles and views all reach the database or Redis: an outage is not a bug.
        logger.warning("answered 503: %s unavailable", dependency, exc_info=exc)
        exc = _Unavailable(UNAVAILABLE.format(dependency=dependency))
    response = exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handling (api_server_error) takes over

    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        body = problem_body(response.status_code, _validation_summary(errors), code="validation_error", errors=errors)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        if isinstance(detail, (dict, list)):
            errors = flatten_errors(detail)
            body = problem_body(response.status_code, _validation_summary(errors), code="invalid", errors=errors)
        else:
            body = problem_body(
                response.status_code, str(detail), code=code if isinstance(code, str) else None, **members
            )
    response.data = body
    # The browsable API keeps its HTML page; everyone else (JSON, an event-stream client) gets the
    # problem media type.
    renderer = getattr(context.get("request"), "accepted_renderer", None)
    if renderer is None or not isinstance(renderer, BrowsableAPIRenderer):
        response.content_type = PROBLEM_CONTENT_TYPE
    return response


def api_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return ProblemResponse(404, f"No resource at {request.path}.", code="not_found")


def _speaks_problems(request: HttpRequest) -> bool:
    # The API and the inbound webhooks document problem details for every error; pages stay HTML.
    return request.path.startswith(("/api/", "/hooks/"))


def unavailable_response(request: HttpRequest, dependency: str) -> HttpResponse:
    """503 with Retry-After: problem details under /api/ and /hooks/, plain text elsewhere."""
    detail = UNAVAILABLE.format(dependency=dependency)
    if _speaks_problems(request):
        response = ProblemResponse(503, detail, code="unavailable")
    else:
        response = HttpResponse(detail, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500: problem details under /api/, the usual page elsewhere. An unreachable database
    or Redis outside DRF's views (middleware: sessions, allow-lists) is a 503 with Retry-After.

    Django calls it while handling the exception, so sys.exc_info() holds it (on the thread of a sync
    request; an async view's error arrives on another thread: the webhook view answers for itself)."""
    if dependency := unavailable_dependency(sys.exc_info()[1]):
        return unavailable_response(request, dependency)
    if _speaks_problems(request):
        return ProblemResponse(
            500, "The server failed to handle this request; it has been logged.", code="server_error"
        )
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's handler400 (a disallowed Host header, a malformed request): problem details under /api/."""
    if _speaks_problems(request):
        return ProblemResponse(400, "The request is malformed or its Host header is not allowed.", code="bad_request")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's handler403, for refusals outside DRF's views: problem details under /api/. A refusal
    that names its problem type (a `code`, as accounts.access.MfaRequired) keeps it and its message."""
    if _speaks_problems(request):
        code = getattr(exception, "code", None)
        if isinstance(code, str):
            members = getattr(exception, "problem_members", None) or {}
            return ProblemResponse(403, str(exception), code=code, **members)
        return ProblemResponse(403, "You may not do this.", code="permission_denied")
    return defaults.permission_denied(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a session request under /api/ without its CSRF token gets problem details."""
    if _speaks_problems(request):
        detail = "CSRF check failed: send the X-CSRFToken header with a session login, or use a token."
        return ProblemResponse(403, detail, code="csrf_failed")
    return csrf.csrf_failure(request, reason)


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "description": "For validation errors: the messages of each field, by its path.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "rule": {
            "type": "string",
            "enum": ["workspace", "api_key", "webhook", "admin"],
            "description": "For /problems/ip-not-allowed: which IP allow-list refused the client's address.",
        },
    },
    "required": ["type", "title", "status"],
}
PROBLEM_RESPONSE = {
    "description": "An error: a problem details document (400 bad input, 401, 403, 404, 405, 409, 413, 429, …).",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def schema_with_problem_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: every operation may answer with a problem (the `default` response)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                operation.setdefault("responses", {}).setdefault("default", PROBLEM_RESPONSE)
    return result
