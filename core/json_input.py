"""JSON from clients, parsed within limits: API request bodies, inbound webhooks and websocket messages.

Python's parser recurses once per level of nesting, so a 2 KB body of a thousand `[` raised
RecursionError, a 500, and a few hundred levels would overflow the code that walks the value later
(schema validation, the database driver). A value may also not hold text that PostgreSQL cannot
store (core.request_text), nor NaN or Infinity, which are not JSON.
"""

import json
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

from core.request_text import UNSTORABLE, UNSTORABLE_TEXT, unstorable_paths

MAX_DEPTH = 64
TOO_DEEP = f"The JSON is nested more than {MAX_DEPTH} levels deep."
NOT_A_NUMBER = "{value} is not a JSON number."


class JSONTooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(TOO_DEEP)


class UnstorableJSON(ValueError):
    """Strings or keys holding a NUL or an unpaired surrogate, at `paths` (dotted, as errors are keyed)."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(UNSTORABLE_TEXT)
        self.paths = paths


def _refuse_constant(value: str):
    raise ValueError(NOT_A_NUMBER.format(value=value))


def _deeper_than(value: Any, limit: int) -> bool:
    pending = [(value, 1)] if isinstance(value, (dict, list)) else []
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        pending += [(child, depth + 1) for child in children if isinstance(child, (dict, list))]
    return False


def json_loads(text: str | bytes) -> Any:
    """Parse a client's JSON. Raises ValueError: json.JSONDecodeError, JSONTooDeep or UnstorableJSON."""
    if isinstance(text, bytes):
        text = text.decode(json.detect_encoding(text))  # as json.loads would, less its "surrogatepass"
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError as error:
        raise JSONTooDeep from error
    # Each walk is skipped when the text cannot need it: fewer brackets than the limit, or neither an
    # escape (`\u0000`, `\ud800`) nor such a character itself.
    if text.count("[") + text.count("{") > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        raise JSONTooDeep
    if "\\u" in text or UNSTORABLE.search(text):
        paths = unstorable_paths(value)
        if paths:
            raise UnstorableJSON(paths)
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser within json_loads' limits: 400 for a body too deep, or text that cannot be
    stored (its `errors` name each field)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            return json_loads(stream.read().decode(encoding))
        except UnstorableJSON as error:
            raise ValidationError({path: [UNSTORABLE_TEXT] for path in error.paths}) from error
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from error


class JsonWebsocketConsumer(AsyncJsonWebsocketConsumer):
    """Channels' JSON consumer, its messages parsed by json_loads: one it refuses is answered with an
    error message, where an exception would have ended the connection."""

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if not text_data:
            await super().receive(text_data, bytes_data, **kwargs)
            return
        try:
            content = json_loads(text_data)
        except ValueError as error:
            await self.send_json({"type": "error", "detail": f"Not an acceptable JSON message: {error}"})
            return
        await self.receive_json(content, **kwargs)
