"""What every request must respect before a view sees it: a body no larger than DWC_MAX_REQUEST_BYTES
(413 problem+json above it), and no NUL in its query string or path (400, see core.request_text).

Django's DATA_UPLOAD_MAX_MEMORY_SIZE guards `request.body` and form data, but DRF's JSON parser reads
the stream directly, so a JSON body of any size would be read and parsed. This middleware answers
before anything reads the body: by Content-Length when there is one, else (a chunked body, which
only ASGI servers pass on; WSGI gives Django nothing to read) by reading at most the limit plus one
byte and putting that back.
"""

import io

from django.conf import settings

from core.problems import ProblemResponse
from core.request_text import escaped, unstorable_paths

# Inbound webhooks enforce DWC_WEBHOOK_MAX_BODY_BYTES themselves, with their own message.
EXEMPT_PREFIXES = ("/hooks/",)
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
TOO_LARGE = "The request body is over the limit of {limit} bytes."
UNSTORABLE_QUERY = "The query string may not contain NUL characters."
UNSTORABLE_PATH = "The path may not contain NUL characters."


class RequestBodyLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DWC_MAX_REQUEST_BYTES
        if not request.path.startswith(EXEMPT_PREFIXES) and self._over(request, limit):
            return ProblemResponse(413, TOO_LARGE.format(limit=limit), code="payload_too_large")
        return self.get_response(request)

    @staticmethod
    def _over(request, limit: int) -> bool:
        declared = request.META.get("CONTENT_LENGTH")
        if declared:
            try:
                return int(declared) > limit
            except ValueError:
                return False  # Django itself reads such a body as empty
        if request.method not in BODY_METHODS:
            return False
        body = request.read(limit + 1)
        if len(body) > limit:
            return True
        # Put back what was read, as HttpRequest.body would have left it.
        request._body = body
        request._stream = io.BytesIO(body)
        return False


class UnstorableTextMiddleware:
    """400 for a NUL in the query string or the path, which views would otherwise pass to the database.

    Django decodes both as UTF-8 with replacement characters, so no surrogate survives; a NUL does.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path:
            return ProblemResponse(400, UNSTORABLE_PATH, code="validation_error", errors={"path": [UNSTORABLE_PATH]})
        names = sorted({escaped(name) for name, values in request.GET.lists() if unstorable_paths([name, *values])})
        if names:
            errors = {name: [UNSTORABLE_QUERY] for name in names}
            return ProblemResponse(400, UNSTORABLE_QUERY, code="validation_error", errors=errors)
        return self.get_response(request)
