"""Request ids and the access log.

A request id is taken from `X-Request-ID` (or generated), echoed in the response, attached to every
log line emitted while the request is handled, and carried into the Celery tasks it enqueues.
"""

import contextvars
import logging
import re
import time
import uuid

from celery.signals import before_task_publish, task_postrun, task_prerun
from opentelemetry import trace

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
user_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
# Ids from outside are echoed into logs and headers: keep them short and boring.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = logging.getLogger("dwc.access")


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "user"):
            record.user = user_id_var.get()
        # With tracing on (config.tracing), a line names its trace: logs and spans join up.
        span = trace.get_current_span().get_span_context()
        if span.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = trace.format_trace_id(span.trace_id)
            record.span_id = trace.format_span_id(span.span_id)
        return True


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            # DRF authenticates inside the view and writes the user back onto the HttpRequest.
            user = getattr(request, "user", None)
            user_id = str(user.pk) if user is not None and user.is_authenticated else None
            access_log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "user": user_id,
                    "request_id": request_id,
                },
            )
            return response
        finally:
            request_id_var.reset(token)


@before_task_publish.connect
def _attach_request_id(headers: dict | None = None, **_kwargs) -> None:
    request_id = request_id_var.get()
    if headers is not None and request_id:
        headers["request_id"] = request_id


@task_prerun.connect
def _restore_request_id(task=None, **_kwargs) -> None:
    request_id = getattr(task.request, "request_id", None) if task is not None else None
    request_id_var.set(request_id)


@task_postrun.connect
def _clear_request_id(**_kwargs) -> None:
    request_id_var.set(None)
