"""How large a value is, and whether it is plain data: measured before an operation's result is kept or
printed, so a template cannot build much more than the limits allow."""

import datetime
import decimal
import uuid
from collections.abc import Iterator
from itertools import chain
from typing import Any

from jinja2.runtime import Undefined

from workflows.engine.expressions.errors import ExpressionError
from workflows.engine.expressions.limits import (
    MAX_DEPTH,
    MAX_INT_BITS,
    MAX_STRING_LENGTH,
    MAX_VALUE_WEIGHT,
    MAX_WIDTH,
    NUMBER_TOO_LARGE,
    OUTPUT_TOO_LONG,
    STRING_TOO_LONG,
    VALUE_TOO_DEEP,
    VALUE_TOO_LARGE,
    WIDTH_TOO_LARGE,
    Limits,
    current_limits,
)

_CONTAINERS = (list, tuple, dict, set, frozenset)
_PRINTABLE_SCALARS = (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal, uuid.UUID)
# (weight, depth, count, plain): weight approximates the characters the value prints as, count the
# values inside it, plain whether it is JSON-like data (no generators, functions, undefined values).
_OPAQUE = (50, 0, 1, False)


def scalar_size(value: Any) -> tuple | None:
    if isinstance(value, str):
        return (len(value) + 2, 0, 1, True)
    if value is None or isinstance(value, bool):
        return (5, 0, 1, True)
    if isinstance(value, int):
        return (value.bit_length() // 3 + 2, 0, 1, True)
    if isinstance(value, float):
        return (24, 0, 1, True)
    if isinstance(value, bytes):
        return (len(value) + 3, 0, 1, False)
    if isinstance(value, _PRINTABLE_SCALARS):  # not JSON, but a context may carry them and they print safely
        return (40, 0, 1, True)
    return None


def _children(value: Any) -> Iterator[Any]:
    return chain.from_iterable(value.items()) if isinstance(value, dict) else iter(value)


def measure(value: Any) -> tuple:
    """The size of a value. Shared parts are measured once, so a value whose printed form is
    exponentially large (a list holding the same list twice, twenty times over) is measured quickly."""
    size = scalar_size(value)
    if size is not None:
        return size
    if not isinstance(value, _CONTAINERS):
        return _OPAQUE
    limits = current_limits.get() or Limits({})
    known = limits.memo.get(id(value))
    if known is not None:
        return known[1]
    # Iterative, with the common item types inlined: results of filters like |list are measured whole.
    stack: list[tuple] = []
    node, items = value, _children(value)
    weight, depth, count, plain = 2, 1, 1, not isinstance(value, (set, frozenset))
    while True:
        for item in items:
            kind = type(item)
            if kind is str:
                weight, count = weight + len(item) + 4, count + 1
                continue
            if kind is int or kind is bool or kind is float or item is None:
                weight, count = weight + 26, count + 1
                continue
            size = scalar_size(item)
            if size is None and isinstance(item, _CONTAINERS):
                known = limits.memo.get(id(item))
                if known is None:
                    if len(stack) > 10 * MAX_DEPTH:  # also stops a value that contains itself
                        raise ExpressionError(VALUE_TOO_DEEP)
                    stack.append((node, items, weight, depth, count, plain))
                    node, items = item, _children(item)
                    weight, depth, count, plain = 2, 1, 1, not isinstance(item, (set, frozenset))
                    break
                size = known[1]
            size = size or _OPAQUE
            weight, depth, count = weight + size[0] + 2, max(depth, size[1] + 1), count + size[2]
            plain = plain and size[3]
        else:
            size = (weight, depth, count, plain)
            limits.remember(node, size)
            if not stack:
                return size
            node, items, weight, depth, count, plain = stack.pop()
            weight, depth, count = weight + size[0] + 2, max(depth, size[1] + 1), count + size[2]
            plain = plain and size[3]


def _largest(values: tuple) -> int:
    return max((measure(value)[0] for value in values), default=0)


def check_new(value: Any, inputs: tuple = ()) -> Any:
    """Refuse a value an operation built if it is too large. An operation may return something as
    large as its largest input (`nodes.fetch.output|first`), only never grow past the limits."""
    if isinstance(value, (str, bytes)):
        if len(value) > MAX_STRING_LENGTH and len(value) > _largest(inputs):
            raise ExpressionError(STRING_TOO_LONG)
    elif isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise ExpressionError(NUMBER_TOO_LARGE)
    elif isinstance(value, _CONTAINERS) and not any(value is given for given in inputs):
        weight, depth, _, _ = measure(value)
        if depth > MAX_DEPTH:
            raise ExpressionError(VALUE_TOO_DEEP)
        if weight > MAX_VALUE_WEIGHT and weight > _largest(inputs):
            raise ExpressionError(VALUE_TOO_LARGE)
    return value


def not_data(value: Any) -> None:
    """Raise the error for a value that is not plain data: an undefined one's own, else a clear one."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Undefined):
            item._fail_with_undefined_error()
        if isinstance(item, (list, tuple, dict)):
            stack.extend(_children(item))
        elif scalar_size(item) is None or isinstance(item, bytes):
            kind = "function" if callable(item) else type(item).__name__
            raise ExpressionError(f"a {kind} is not data and cannot be used as text (use |list or |join)")


def as_text(value: Any, limit: int) -> str:
    """`str(value)`, refusing what is not plain data (a generator would print its address) and plain
    data too large to print, before printing it."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return str(value)
    weight, depth, _, plain = measure(value)
    if not plain:
        not_data(value)
    if depth > MAX_DEPTH:
        raise ExpressionError(VALUE_TOO_DEEP)
    if weight > limit:
        raise ExpressionError(STRING_TOO_LONG if limit == MAX_STRING_LENGTH else OUTPUT_TOO_LONG)
    return str(value)


def text_weight(value: Any) -> int:
    weight, _, _, plain = measure(value)
    if not plain:
        not_data(value)
    return weight


def check_width(width: Any) -> None:
    if isinstance(width, (int, float)) and width > MAX_WIDTH:
        raise ExpressionError(WIDTH_TOO_LARGE)
