"""What the API's file exports share (audit events, analytics): `?format=` kept away from DRF's renderer
choice, CSV written a line at a time, cells a spreadsheet would run as formulas defused, and streaming
that works under ASGI as under WSGI."""

import csv
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


class IgnoreFormatParameter(DefaultContentNegotiation):
    """`?format=` names the export's file format here, not a DRF renderer; errors stay JSON problems."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class _Line:
    """csv.writer writes into this and gets the line back, so rows can be streamed."""

    def write(self, value: str) -> str:
        return value


def csv_writer():
    """A csv.writer whose writerow returns the line it wrote."""
    return csv.writer(_Line())


def csv_cell(value: Any) -> str:
    """A text cell, defused if a spreadsheet would run it as a formula."""
    text = "" if value is None else json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def json_array_chunks(items: Iterable[Any], *, batch: int = 1000) -> Iterator[str]:
    """A JSON array of `items`, written `batch` items to a chunk: valid JSON once the last one is sent."""
    yield "["
    pending, first = [], True
    for item in items:
        pending.append(("" if first else ",") + json.dumps(item, ensure_ascii=False))
        first = False
        if len(pending) == batch:
            yield "".join(pending)
            pending = []
    yield "".join(pending) + "]"


async def _async_chunks(chunks: Iterator[str]) -> AsyncIterator[str]:
    # Under ASGI Django would read a synchronous iterator into a list before sending any of it. Pulled
    # chunk by chunk in the request's own sync thread (thread_sensitive), the cursor stays where it was opened.
    pull = sync_to_async(lambda: next(chunks, None))
    try:
        while (chunk := await pull()) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close)()


def attachment(request: Request, chunks: Iterator[str], *, file_format: str, filename: str) -> StreamingHttpResponse:
    """A streamed download of `chunks` (a generator) as `filename`, in csv or json."""
    content = _async_chunks(chunks) if isinstance(request._request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type=CONTENT_TYPES[file_format])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
