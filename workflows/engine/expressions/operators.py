"""Operators, string methods and `format`: their result's size estimated from their inputs before they run."""

import codecs
import re
from collections.abc import Mapping
from typing import Any

from jinja2.sandbox import SandboxedFormatter
from markupsafe import EscapeFormatter

from workflows.engine.expressions.errors import ExpressionError
from workflows.engine.expressions.limits import (
    LIST_TOO_LONG,
    MAX_INT_BITS,
    MAX_LIST_LENGTH,
    MAX_STRING_LENGTH,
    NUMBER_TOO_LARGE,
    STRING_TOO_LONG,
)
from workflows.engine.expressions.sizes import check_width, measure, text_weight

_PERCENT_FIELD = re.compile(r"%(?:\(([^)]*)\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)


def check_percent(template: str, args: Any) -> None:
    """`'%s' % value`: estimate the result from the field widths and the values, before formatting."""
    values = args if isinstance(args, tuple) else (args,)
    position, total = 0, len(template)
    for field in _PERCENT_FIELD.finditer(template):
        key, width, precision, kind = field.groups()
        if kind == "%":
            continue
        if "*" in (width, precision):
            raise ExpressionError("'*' widths are not supported in % formatting")
        numbers = [int(number) for number in (width, precision) if number]
        check_width(max(numbers, default=0))
        if key is not None and isinstance(args, Mapping):
            value = args.get(key)
        else:
            value = values[position] if position < len(values) else None
            position += 1
        total += max(numbers, default=0) + text_weight(value) + (330 if kind in "eEfFgG" else 0)
    if total > MAX_STRING_LENGTH:
        raise ExpressionError(STRING_TOO_LONG)


def check_binop(operator: str, left: Any, right: Any) -> tuple | None:
    """Check an operation's size before it runs; return the size of a list it builds, if known."""
    if operator == "*":
        if isinstance(left, int) and isinstance(right, (str, bytes, list, tuple)):
            left, right = right, left
        if isinstance(left, (str, bytes)) and isinstance(right, int):
            if len(left) * right > MAX_STRING_LENGTH:
                raise ExpressionError(STRING_TOO_LONG)
        elif isinstance(left, (list, tuple)) and isinstance(right, int):
            count = max(right, 0)
            if len(left) * count > MAX_LIST_LENGTH:
                raise ExpressionError(LIST_TOO_LONG)
            weight, depth, items, plain = measure(left)
            return (count * (weight - 2) + 2, depth, count * (items - 1) + 1, plain)
        elif (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1
        ):
            raise ExpressionError(NUMBER_TOO_LARGE)
    elif operator == "**":
        # A power's bits are at least (bits of the base - 1) * exponent: 10**10000 is refused unbuilt.
        growing = isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
        if growing and (abs(left).bit_length() - 1) * right >= MAX_INT_BITS:
            raise ExpressionError(NUMBER_TOO_LARGE)
    elif operator == "+":
        if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
            if len(left) + len(right) > MAX_STRING_LENGTH:
                raise ExpressionError(STRING_TOO_LONG)
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            if len(left) + len(right) > MAX_LIST_LENGTH:
                raise ExpressionError(LIST_TOO_LONG)
            first, second = measure(left), measure(right)
            return (
                first[0] + second[0] - 2,
                max(first[1], second[1]),
                first[2] + second[2] - 1,
                first[3] and second[3],
            )
    elif operator == "%" and isinstance(left, str):
        check_percent(left, right)
    elif operator == "%" and isinstance(left, bytes):
        raise ExpressionError("% formatting of bytes is not supported")
    return None


class BoundedFormatter(SandboxedFormatter):
    """`'{}'.format(value)` in the sandbox, refusing widths and results that are too large."""

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self.budget = MAX_STRING_LENGTH - len(format_string)
        return super().vformat(format_string, args, kwargs)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion:
            self._spend(text_weight(value))
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        width = max((int(number) for number in re.findall(r"\d+", format_spec)), default=0)
        check_width(width)
        self._spend(text_weight(value) + width)
        return super().format_field(value, format_spec)

    def _spend(self, size: int) -> None:
        self.budget -= size
        if self.budget < 0:
            raise ExpressionError(STRING_TOO_LONG)


class BoundedEscapeFormatter(BoundedFormatter, EscapeFormatter):
    pass


# str, bytes and int methods that can build a string much larger than their inputs, or take long.
_SIZE_KEYWORDS = {"expandtabs": "tabsize", "to_bytes": "length", "encode": "encoding", "decode": "encoding"}
# Some codecs are written in Python and take quadratic time (punycode); these few are linear C code.
_FAST_CODECS = frozenset(["utf-8", "ascii", "iso8859-1", "utf-16", "utf-32"])


def _codec(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return name


def check_method(owner: Any, name: str, args: tuple, kwargs: dict) -> tuple:
    first = args[0] if args else kwargs.get(_SIZE_KEYWORDS.get(name, ""))
    if isinstance(owner, (str, bytes)) and first is not None:
        if name in ("center", "ljust", "rjust", "zfill"):
            check_width(first)
        elif name == "expandtabs":
            check_width(first)
            tab = "\t" if isinstance(owner, str) else b"\t"
            if isinstance(first, int) and len(owner) + owner.count(tab) * first > MAX_STRING_LENGTH:
                raise ExpressionError(STRING_TOO_LONG)
        elif name == "join":
            items = first if isinstance(first, (str, bytes)) else list(first)
            total = len(owner) * len(items) + sum(len(item) for item in items if isinstance(item, (str, bytes)))
            if total > MAX_STRING_LENGTH:
                raise ExpressionError(STRING_TOO_LONG)
            return (items, *args[1:])
        elif name == "replace" and len(args) >= 2 and all(isinstance(arg, (str, bytes)) for arg in args[:2]):
            check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else None)
        elif name == "translate" and isinstance(first, Mapping):
            longest = max((len(v) for v in first.values() if isinstance(v, (str, bytes))), default=1)
            if len(owner) * longest > MAX_STRING_LENGTH:
                raise ExpressionError(STRING_TOO_LONG)
        elif name in ("encode", "decode") and isinstance(first, str) and _codec(first) not in _FAST_CODECS:
            raise ExpressionError(f"encoding {first!r} is not supported")
    elif isinstance(owner, int) and name == "to_bytes" and isinstance(first, int) and first > MAX_STRING_LENGTH:
        raise ExpressionError(STRING_TOO_LONG)
    return args


def check_replace(text: Any, old: Any, new: Any, count: Any) -> None:
    found = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    if len(text) + found * (len(new) - len(old)) > MAX_STRING_LENGTH:
        raise ExpressionError(STRING_TOO_LONG)
