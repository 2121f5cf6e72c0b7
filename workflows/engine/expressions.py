"""The one expression language: Jinja2 in an immutable sandbox with strict undefined names.

Templates (`Hello {{ input.name }}`) render to strings; expressions (`nodes.check.output.status == 200`)
evaluate to a value and are used where a value, not text, is wanted (conditions, loop items). Where a
JSON value is built from templates (a transform's values, a child run's input, a JSON body), a string
that is exactly one `{{ expression }}` gives the expression's value, so `"{{ input.a + input.b }}"` is
the number 3 and `"{{ input.tags }}"` a list; a string with text around its expression is text. Both are
parsed when a definition is saved, so a syntax error is a 400 naming the node and the field rather
than a failed run.

At run time a template comes from a workflow author, so rendering is bounded: the sandbox refuses
Python internals, every operation that can build a large value checks its size *before* building it,
and loops, calls and filters check a CPU-time deadline. Any failure is an `ExpressionError` saying what
went wrong and, when known, on which template line.
"""

import codecs
import contextlib
import contextvars
import datetime
import decimal
import functools
import re
import time
import traceback
import types
import uuid
from collections import abc, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, filters, nodes
from jinja2 import utils as jinja_utils
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import missing, pass_environment, pass_eval_context
from markupsafe import EscapeFormatter, Markup

from workflows.engine.errors import PermanentError

# Templates are stored as text; a bounded length keeps a parse (and later a render) cheap.
MAX_TEMPLATE_LENGTH = 100_000
# Run-time bounds. Sizes are checked before a value is built, so a template cannot allocate much more.
RENDER_TIME_LIMIT = 0.1  # seconds of CPU time per template or expression
MAX_OUTPUT_LENGTH = 1_000_000  # characters a template renders to (render_value: all strings together)
MAX_STRING_LENGTH = 1_000_000  # characters in a string a template builds
MAX_LIST_LENGTH = 100_000  # items in a list a template builds
MAX_VALUE_WEIGHT = 5_000_000  # about the characters of JSON a list or dict a template builds would print as
MAX_DEPTH = 200  # nesting of a list or dict a template builds
MAX_INT_BITS = 4096
MAX_WIDTH = 10_000  # padding, indent and wrap widths, format widths
MAX_RANGE = 10_000

TOO_SLOW = f"rendering took longer than {RENDER_TIME_LIMIT * 1000:.0f} ms"
OUTPUT_TOO_LONG = f"the output would be longer than {MAX_OUTPUT_LENGTH} characters"
STRING_TOO_LONG = f"the result would be longer than {MAX_STRING_LENGTH} characters"
LIST_TOO_LONG = f"the result would have more than {MAX_LIST_LENGTH} items"
VALUE_TOO_LARGE = f"the result would be larger than {MAX_VALUE_WEIGHT} characters of data"
VALUE_TOO_DEEP = f"the result would be nested more than {MAX_DEPTH} levels deep"
NUMBER_TOO_LARGE = f"the result would be a number larger than {MAX_INT_BITS} bits"
WIDTH_TOO_LARGE = f"widths larger than {MAX_WIDTH} are not allowed"
RANGE_TOO_LONG = f"range() may produce at most {MAX_RANGE} items"
TOO_DEEP = "the template is nested or recurses too deeply"
UNSAFE = "Unsafe expression: "


class ExpressionError(PermanentError):
    """A template or expression failed at run time; retrying with the same definition cannot help."""

    def __init__(self, message: str, *, line: int | None = None):
        if len(message) > 500:  # Python's messages may quote a whole value: float('a' * 10**6)
            message = message[:500] + "..."
        super().__init__(f"line {line}: {message}" if line else message, details={"line": line} if line else None)
        self.reason = message
        self.line = line


@dataclass(frozen=True)
class ExpressionSyntaxError(Exception):
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"Template syntax error at {where}{self.message}"


# --- Time: a deadline that loops, calls, filters and output check. ---------------------------------


class _Limits:
    """The state of one render (or one render_value): its context, deadline and measured values."""

    # Sizes of measured lists and dicts by id, each pinned so its id cannot be reused while the entry
    # lives. Values are immutable in the sandbox, so a size stays true; the pins are bounded.
    MEMO_ITEMS = 1_000_000

    def __init__(self, context: Mapping[str, Any]):
        self.context = context
        self.memo: dict[int, tuple[Any, tuple]] = {}
        self.pinned = 0
        self.restart()

    def restart(self) -> None:
        self.cpu_start = time.thread_time()
        self.deadline = time.perf_counter() + RENDER_TIME_LIMIT

    def check(self) -> None:
        # The wall clock is cheap to read and never behind CPU time; only when it passes the deadline
        # is CPU time read, so a thread that waited (GIL, a busy machine) is not failed for it.
        used = time.thread_time() - self.cpu_start
        if used >= RENDER_TIME_LIMIT:
            raise ExpressionError(TOO_SLOW)
        self.deadline = time.perf_counter() + RENDER_TIME_LIMIT - used

    def remember(self, value: Any, size: tuple) -> None:
        self.pinned += len(value) + 1
        if self.pinned > self.MEMO_ITEMS:
            self.memo.clear()
            self.pinned = len(value) + 1
        self.memo[id(value)] = (value, size)


_limits: contextvars.ContextVar[_Limits | None] = contextvars.ContextVar("expression_limits", default=None)


def _tick() -> None:
    limits = _limits.get()
    if limits is not None and time.perf_counter() > limits.deadline:
        limits.check()


# --- Sizes: how large a value is, and whether it is plain data. -------------------------------------

_CONTAINERS = (list, tuple, dict, set, frozenset)
_PRINTABLE_SCALARS = (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal, uuid.UUID)
# (weight, depth, count, plain): weight approximates the characters the value prints as, count the
# values inside it, plain whether it is JSON-like data (no generators, functions, undefined values).
_OPAQUE = (50, 0, 1, False)


def _scalar_size(value: Any) -> tuple | None:
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


def _measure(value: Any) -> tuple:
    """The size of a value. Shared parts are measured once, so a value whose printed form is
    exponentially large (a list holding the same list twice, twenty times over) is measured quickly."""
    size = _scalar_size(value)
    if size is not None:
        return size
    if not isinstance(value, _CONTAINERS):
        return _OPAQUE
    limits = _limits.get() or _Limits({})
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
            size = _scalar_size(item)
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
    return max((_measure(value)[0] for value in values), default=0)


def _check_new(value: Any, inputs: tuple = ()) -> Any:
    """Refuse a value an operation built if it is too large. An operation may return something as
    large as its largest input (`nodes.fetch.output|first`), only never grow past the limits."""
    if isinstance(value, (str, bytes)):
        if len(value) > MAX_STRING_LENGTH and len(value) > _largest(inputs):
            raise ExpressionError(STRING_TOO_LONG)
    elif isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise ExpressionError(NUMBER_TOO_LARGE)
    elif isinstance(value, _CONTAINERS) and not any(value is given for given in inputs):
        weight, depth, _, _ = _measure(value)
        if depth > MAX_DEPTH:
            raise ExpressionError(VALUE_TOO_DEEP)
        if weight > MAX_VALUE_WEIGHT and weight > _largest(inputs):
            raise ExpressionError(VALUE_TOO_LARGE)
    return value


def _not_data(value: Any) -> None:
    """Raise the error for a value that is not plain data: an undefined one's own, else a clear one."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Undefined):
            item._fail_with_undefined_error()
        if isinstance(item, (list, tuple, dict)):
            stack.extend(_children(item))
        elif _scalar_size(item) is None or isinstance(item, bytes):
            kind = "function" if callable(item) else type(item).__name__
            raise ExpressionError(f"a {kind} is not data and cannot be used as text (use |list or |join)")


def _as_text(value: Any, limit: int) -> str:
    """`str(value)`, refusing what is not plain data (a generator would print its address) and plain
    data too large to print, before printing it."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return str(value)
    weight, depth, _, plain = _measure(value)
    if not plain:
        _not_data(value)
    if depth > MAX_DEPTH:
        raise ExpressionError(VALUE_TOO_DEEP)
    if weight > limit:
        raise ExpressionError(STRING_TOO_LONG if limit == MAX_STRING_LENGTH else OUTPUT_TOO_LONG)
    return str(value)


def _text_weight(value: Any) -> int:
    weight, _, _, plain = _measure(value)
    if not plain:
        _not_data(value)
    return weight


def _check_width(width: Any) -> None:
    if isinstance(width, (int, float)) and width > MAX_WIDTH:
        raise ExpressionError(WIDTH_TOO_LARGE)


# --- Operators and formatting. ------------------------------------------------------------------------

_PERCENT_FIELD = re.compile(r"%(?:\(([^)]*)\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)


def _check_percent(template: str, args: Any) -> None:
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
        _check_width(max(numbers, default=0))
        if key is not None and isinstance(args, Mapping):
            value = args.get(key)
        else:
            value = values[position] if position < len(values) else None
            position += 1
        total += max(numbers, default=0) + _text_weight(value) + (330 if kind in "eEfFgG" else 0)
    if total > MAX_STRING_LENGTH:
        raise ExpressionError(STRING_TOO_LONG)


def _check_binop(operator: str, left: Any, right: Any) -> tuple | None:
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
            weight, depth, items, plain = _measure(left)
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
            first, second = _measure(left), _measure(right)
            return (
                first[0] + second[0] - 2,
                max(first[1], second[1]),
                first[2] + second[2] - 1,
                first[3] and second[3],
            )
    elif operator == "%" and isinstance(left, str):
        _check_percent(left, right)
    elif operator == "%" and isinstance(left, bytes):
        raise ExpressionError("% formatting of bytes is not supported")
    return None


class _Formatter(SandboxedFormatter):
    """`'{}'.format(value)` in the sandbox, refusing widths and results that are too large."""

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self.budget = MAX_STRING_LENGTH - len(format_string)
        return super().vformat(format_string, args, kwargs)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion:
            self._spend(_text_weight(value))
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        width = max((int(number) for number in re.findall(r"\d+", format_spec)), default=0)
        _check_width(width)
        self._spend(_text_weight(value) + width)
        return super().format_field(value, format_spec)

    def _spend(self, size: int) -> None:
        self.budget -= size
        if self.budget < 0:
            raise ExpressionError(STRING_TOO_LONG)


class _EscapeFormatter(_Formatter, EscapeFormatter):
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


def _check_method(owner: Any, name: str, args: tuple, kwargs: dict) -> tuple:
    first = args[0] if args else kwargs.get(_SIZE_KEYWORDS.get(name, ""))
    if isinstance(owner, (str, bytes)) and first is not None:
        if name in ("center", "ljust", "rjust", "zfill"):
            _check_width(first)
        elif name == "expandtabs":
            _check_width(first)
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
            _check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else None)
        elif name == "translate" and isinstance(first, Mapping):
            longest = max((len(v) for v in first.values() if isinstance(v, (str, bytes))), default=1)
            if len(owner) * longest > MAX_STRING_LENGTH:
                raise ExpressionError(STRING_TOO_LONG)
        elif name in ("encode", "decode") and isinstance(first, str) and _codec(first) not in _FAST_CODECS:
            raise ExpressionError(f"encoding {first!r} is not supported")
    elif isinstance(owner, int) and name == "to_bytes" and isinstance(first, int) and first > MAX_STRING_LENGTH:
        raise ExpressionError(STRING_TOO_LONG)
    return args


def _check_replace(text: Any, old: Any, new: Any, count: Any) -> None:
    found = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    if len(text) + found * (len(new) - len(old)) > MAX_STRING_LENGTH:
        raise ExpressionError(STRING_TOO_LONG)


# --- Filters and globals. ---------------------------------------------------------------------------


def do_center(value: str, width: int = 80) -> str:
    _check_width(width)
    return filters.do_center(value, width)


def do_indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    step = len(width) if isinstance(width, str) else width
    _check_width(step)
    if isinstance(step, int) and len(s) + (s.count("\n") + 1) * step > MAX_STRING_LENGTH:
        raise ExpressionError(STRING_TOO_LONG)
    return filters.do_indent(s, width, first, blank)


@pass_environment
def do_wordwrap(environment, s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
    _check_width(width)
    if isinstance(width, int) and width > 0:
        lines = len(s) // width + s.count("\n") + 1
        if len(s) + lines * len(wrapstring or "\n") > MAX_STRING_LENGTH:
            raise ExpressionError(STRING_TOO_LONG)
        # textwrap cuts a word longer than the width one line at a time, copying the rest of it each time.
        longest = max((len(word.group()) for word in re.finditer(rf"\S{{{width + 1},}}", s)), default=0)
        if break_long_words and len(s) * longest // width > 100_000_000:
            raise ExpressionError(f"the words are too long to wrap at width {width}")
    return filters.do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def do_format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_percent(value, kwargs or args)
    return filters.do_format(value, *args, **kwargs)


@pass_eval_context
def do_replace(eval_ctx, s, old, new, count=None):
    old, new = _as_text(old, MAX_STRING_LENGTH), _as_text(new, MAX_STRING_LENGTH)
    _check_replace(s, old, new, count)
    return filters.do_replace(eval_ctx, s, old, new, count)


@pass_eval_context
def do_join(eval_ctx, value, d="", attribute=None):
    if attribute is not None:
        value = map(filters.make_attrgetter(eval_ctx.environment, attribute), value)
    separator, texts, total = _as_text(d, MAX_STRING_LENGTH), [], 0
    for item in value:
        text = _as_text(item, MAX_STRING_LENGTH)
        total += len(text) + len(separator)
        if total > MAX_STRING_LENGTH + len(separator):
            raise ExpressionError(STRING_TOO_LONG)
        texts.append(text)
    return filters.sync_do_join(eval_ctx, texts, separator)


@pass_environment
def do_sum(environment, iterable, attribute=None, start=0):
    if attribute is not None:
        iterable = map(filters.make_attrgetter(environment, attribute), iterable)
    total = start
    for item in iterable:
        total = environment.call_binop(None, "+", total, item)
    return total


def _check_fill(fill_with: Any) -> None:
    if _scalar_size(fill_with) is None:
        raise ExpressionError("the fill value must be a string, a number or none")


def do_batch(value, linecount, fill_with=None):
    if isinstance(linecount, int) and linecount > MAX_LIST_LENGTH:
        raise ExpressionError(LIST_TOO_LONG)
    _check_fill(fill_with)
    return filters.do_batch(value, linecount, fill_with)


def do_slice(value, slices, fill_with=None):
    if isinstance(slices, int) and slices > MAX_LIST_LENGTH:
        raise ExpressionError(LIST_TOO_LONG)
    _check_fill(fill_with)
    return filters.sync_do_slice(value, slices, fill_with)


@pass_eval_context
def do_tojson(eval_ctx, value, indent=None):
    step = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
    _check_width(step)
    weight, depth, count, plain = _measure(value)
    if not plain:
        _not_data(value)
    if weight + count * (1 + step * depth) > MAX_STRING_LENGTH:
        raise ExpressionError(STRING_TOO_LONG)
    return filters.do_tojson(eval_ctx, value, indent)


def do_pprint(value: Any) -> str:
    weight, depth, count, plain = _measure(value)
    if not plain:
        _not_data(value)
    if weight + count * (1 + depth) > MAX_STRING_LENGTH:
        raise ExpressionError(STRING_TOO_LONG)
    return filters.do_pprint(value)


_REPLACED_FILTERS = {
    "center": do_center,
    "indent": do_indent,
    "wordwrap": do_wordwrap,
    "format": do_format,
    "replace": do_replace,
    "join": do_join,
    "sum": do_sum,
    "batch": do_batch,
    "slice": do_slice,
    "tojson": do_tojson,
    "pprint": do_pprint,
}
# Filters that print their first argument: it is turned into text first, so a list too large to
# print, or a generator (whose text is its address), is refused rather than printed.
_TEXT_FILTERS = frozenset(
    "capitalize center e escape forceescape format indent lower replace safe string striptags title trim "  # noqa: SIM905
    "truncate upper urlize wordcount wordwrap".split()
)
_DATA_FILTERS = frozenset(["urlencode", "xmlattr"])


def _guard_filter(name: str, function: Any) -> Any:
    offset = 1 if hasattr(function, "jinja_pass_arg") else 0
    as_text, as_data = name in _TEXT_FILTERS, name in _DATA_FILTERS

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        if len(args) > offset:
            value = args[offset]
            if as_text and not isinstance(value, str):
                args = (*args[:offset], _as_text(value, MAX_STRING_LENGTH), *args[offset + 1 :])
            elif as_data and not isinstance(value, str) and _text_weight(value) > MAX_STRING_LENGTH:
                raise ExpressionError(STRING_TOO_LONG)
        return _check_new(function(*args, **kwargs), (*args[offset:], *kwargs.values()))

    return guarded


def _dict(*args: Any, **kwargs: Any) -> dict:
    # The dict type itself would expose unbound methods: `dict.pop(input, 'topic')` mutates the context.
    return dict(*args, **kwargs)


def _range(*args: int) -> range:
    try:
        numbers = range(*args)
        too_long = len(numbers) > MAX_RANGE
    except OverflowError:
        too_long = True
    if too_long:
        raise ExpressionError(RANGE_TOO_LONG)
    return numbers


_MUTABLE_TYPES = (abc.MutableSet, abc.MutableMapping, abc.MutableSequence, deque)
_MUTATING_METHODS = frozenset(
    "add append appendleft clear difference_update discard extend extendleft insert intersection_update "  # noqa: SIM905
    "pop popitem popleft remove reverse rotate setdefault sort symmetric_difference_update update".split()
)


class Namespace(jinja_utils.Namespace):
    # The default repr prints every attribute; namespaces can hold each other, so it could be huge.
    def __repr__(self) -> str:
        return "<Namespace>"


class _Undefined(StrictUndefined):
    """StrictUndefined that names where the missing attribute was looked up: `'nodes' has no
    attribute 'outline'` rather than `'dict object' has no attribute 'outline'`."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        path = None if self._undefined_hint or self._undefined_obj is missing else _path_of(self._undefined_obj)
        if path is None:
            return super()._undefined_message
        what = "attribute" if isinstance(self._undefined_name, str) else "element"
        message = f"{path!r} has no {what} {self._undefined_name!r}"
        if isinstance(self._undefined_obj, dict) and self._undefined_obj:
            keys = [str(key) for key in list(self._undefined_obj)[:10]]
            message += f" (it has: {', '.join(keys)}{', ...' if len(self._undefined_obj) > 10 else ''})"
        return message


def _path_of(target: Any) -> str | None:
    """Where a value sits in the render context (`nodes.fetch.output`), for error messages."""
    limits = _limits.get()
    if limits is None:
        return None
    queue = deque(limits.context.items())
    for _ in range(100_000):
        if not queue:
            return None
        path, value = queue.popleft()
        if value is target:
            return path
        if isinstance(value, dict):
            queue.extend(
                (f"{path}.{key}" if isinstance(key, str) and key.isidentifier() else f"{path}[{key!r}]", item)
                for key, item in value.items()
            )
        elif isinstance(value, list):
            queue.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
    return None


# --- The environment. ---------------------------------------------------------------------------------


def _checked_literal(visit: Any) -> Any:
    def visitor(self: CodeGenerator, node: nodes.Expr, frame: Any) -> None:
        if getattr(node, "ctx", "load") != "load":  # a tuple being assigned to: `{% for a, b in ... %}`
            return visit(self, node, frame)
        self.write("environment.new_value(")
        visit(self, node, frame)
        self.write(")")
        return None

    return visitor


class _CodeGenerator(CodeGenerator):
    """Compiles templates with hooks the sandbox lacks: loops check the deadline on every item,
    and `~` and list, tuple and dict literals check the size of what they build."""

    visit_List = _checked_literal(CodeGenerator.visit_List)  # noqa: N815 (Jinja's names)
    visit_Tuple = _checked_literal(CodeGenerator.visit_Tuple)  # noqa: N815
    visit_Dict = _checked_literal(CodeGenerator.visit_Dict)  # noqa: N815

    def visit_Template(self, node: nodes.Template, frame: Any = None) -> None:  # noqa: N802 (Jinja's name)
        for loop in list(node.find_all(nodes.For)):
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute("loop_items"), [loop.iter], [], None, None, lineno=loop.iter.lineno
            )
        super().visit_Template(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:  # noqa: N802 (Jinja's name)
        self.write("environment.concat_values((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")


class _Environment(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset(["+", "*", "**", "//", "%"])

    def __init__(self, **options: Any):
        super().__init__(finalize=self.finalize_output, **options)
        for name in ("lipsum", "cycler"):  # lipsum(10**6) writes megabytes; cycler's items are a list
            del self.globals[name]
        self.globals.update(range=_range, dict=_dict, namespace=Namespace)
        for name, function in list(self.filters.items()):
            self.filters[name] = _guard_filter(name, _REPLACED_FILTERS.get(name, function))

    @staticmethod
    def finalize_output(value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            return value  # printed by str() as usual
        return _as_text(value, MAX_OUTPUT_LENGTH)

    def concat(self, pieces: Any) -> str:  # type: ignore[override]
        # Joins the output of a template, a macro or a {% set %} block. Gathering the pieces costs
        # one reference each (and their number is bounded by time); joining them is what can be large.
        parts = pieces if isinstance(pieces, list) else list(pieces)
        if sum(map(len, parts)) > MAX_OUTPUT_LENGTH:
            raise ExpressionError(OUTPUT_TOO_LONG)
        return "".join(parts)

    @staticmethod
    def concat_values(values: tuple) -> str:
        texts = [_as_text(value, MAX_STRING_LENGTH) for value in values]
        if sum(len(text) for text in texts) > MAX_STRING_LENGTH:
            raise ExpressionError(STRING_TOO_LONG)
        return "".join(texts)

    @staticmethod
    def new_value(value: Any) -> Any:
        return _check_new(value)

    @staticmethod
    def loop_items(iterable: Any) -> Iterator[Any]:
        limits, clock = _limits.get(), time.perf_counter
        if limits is None:
            yield from iterable
            return
        for item in iterable:
            if clock() > limits.deadline:
                limits.check()
            yield item

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        size = _check_binop(operator, left, right)
        result = self.binop_table[operator](left, right)
        if size is not None:
            (_limits.get() or _Limits({})).remember(result, size)
        return _check_new(result)

    def call(self, context: Any, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        _tick()
        if not self.is_safe_callable(function):
            raise SecurityError(f"{function!r} is not safely callable")
        owner = getattr(function, "__self__", None)
        if owner is not None:
            args = _check_method(owner, getattr(function, "__name__", ""), args, kwargs)
        result = context.call(function, *args, **kwargs)
        return _check_new(result, (owner, *args, *kwargs.values()))

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Context values are JSON, so `input.items` means the key "items" if there is one, not dict.items.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # The immutable sandbox checks `list_value.append`, not `list.append` reached through a type.
        owner = obj if isinstance(obj, type) else type(obj)
        if attr in _MUTATING_METHODS and issubclass(owner, _MUTABLE_TYPES):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # Fail at once rather than return an undefined value that fails only when printed.
        if isinstance(obj, Undefined):
            obj._fail_with_undefined_error()
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe.")

    def wrap_str_format(self, value: Any) -> Any:
        # As the sandbox's, with a formatter that bounds widths and the result: '{:>100000000}'.format(1).
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        template = value.__self__
        if not isinstance(template, str):
            return None
        formatter = _EscapeFormatter(self, escape=template.escape) if isinstance(template, Markup) else _Formatter(self)
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                args, kwargs = (), args[0]
            return type(template)(formatter.vformat(template, args, kwargs))

        return functools.update_wrapper(wrapper, value)


environment = _Environment(undefined=_Undefined, autoescape=False, keep_trailing_newline=True)

# Errors Python raises while parsing or compiling a template that is too deeply nested or too large.
_TOO_DEEP_ERRORS = (RecursionError, MemoryError, SyntaxError)


def strip_braces(source: str) -> str:
    """Expressions may be written bare or as one `{{ ... }}`, the way they appear in templates."""
    text = source.strip()
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        return text[2:-2].strip()
    return text


def check_template(source: str) -> None:
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise ExpressionSyntaxError(f"longer than {MAX_TEMPLATE_LENGTH} characters")
    try:
        environment.parse(source)
    except TemplateSyntaxError as error:
        raise ExpressionSyntaxError(error.message or "invalid template", error.lineno) from error
    except (*_TOO_DEEP_ERRORS, ValueError) as error:
        raise ExpressionSyntaxError(_describe(error)) from error


def check_expression(source: str) -> None:
    text = strip_braces(source)
    if not text:
        raise ExpressionSyntaxError("the expression is empty")
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise ExpressionSyntaxError(f"longer than {MAX_TEMPLATE_LENGTH} characters")
    try:
        environment.compile_expression(text)
    except TemplateSyntaxError as error:
        raise ExpressionSyntaxError(error.message or "invalid expression", error.lineno) from error
    except (*_TOO_DEEP_ERRORS, ValueError) as error:
        raise ExpressionSyntaxError(_describe(error)) from error


# --- Rendering. ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _compile_template(source: str) -> Template:
    return environment.from_string(source)


@functools.lru_cache(maxsize=256)
def _compile_expression(source: str) -> Any:
    return environment.compile_expression(source, undefined_to_none=False)


@functools.lru_cache(maxsize=256)
def _compile_lone_expression(source: str) -> tuple[Template, int] | None:
    """For a template that is exactly one `{{ expression }}`, whitespace around it allowed: a template
    that stores the expression's value as `result`, and the expression's line. None for any other."""
    stripped = source.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")):  # cheap: most templates are text
        return None
    body = environment.parse(source).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts = [part for part in body[0].nodes if not (isinstance(part, nodes.TemplateData) and not part.data.strip())]
    if len(parts) != 1 or isinstance(parts[0], nodes.TemplateData):
        return None
    expression = parts[0]
    # What Environment.compile_expression builds, from the parsed node rather than from source text.
    assign = nodes.Assign(nodes.Name("result", "store"), expression, lineno=expression.lineno)
    return environment.from_string(nodes.Template([assign], lineno=1)), expression.lineno


def _compiled(compile_source: Any, source: str) -> Any:
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise ExpressionError(f"longer than {MAX_TEMPLATE_LENGTH} characters")
    try:
        return compile_source(source)
    except TemplateSyntaxError as error:
        raise ExpressionError(f"syntax error: {error.message}", line=error.lineno) from None
    except Exception as error:
        raise ExpressionError(_describe(error)) from error


def _describe(error: BaseException) -> str:
    if isinstance(error, _TOO_DEEP_ERRORS):
        return TOO_DEEP
    if isinstance(error, SecurityError):
        return UNSAFE + str(error)
    if isinstance(error, KeyError) and error.args:
        return f"missing key {error.args[0]!r}"
    return str(error) or type(error).__name__


@contextlib.contextmanager
def _bounded(context: Mapping[str, Any]) -> Iterator[_Limits]:
    token = _limits.set(_Limits(context))
    try:
        yield _limits.get()
    finally:
        _limits.reset(token)


def _failure(error: Exception, template: Template | None) -> ExpressionError:
    """The ExpressionError for a failed render, with the template line where it failed, if known."""
    line = None
    for frame, python_line in traceback.walk_tb(error.__traceback__) if template else ():
        if frame.f_code.co_filename == template.filename:
            line = template.get_corresponding_lineno(python_line)
    if isinstance(error, ExpressionError):
        return error if error.line or not line else ExpressionError(error.reason, line=line)
    return ExpressionError(_describe(error), line=line)


def _render(source: str, limits: _Limits) -> str:
    if "{" not in source:  # no tag, no expression, no comment: nothing to render
        if len(source) > MAX_TEMPLATE_LENGTH:
            raise ExpressionError(f"longer than {MAX_TEMPLATE_LENGTH} characters")
        return source
    template = _compiled(_compile_template, source)
    limits.restart()
    # Template.render would do the same, but on error rewrites the traceback at a cost of about a
    # millisecond per template frame, which is long for a template that failed deep in recursion.
    try:
        return environment.concat(template.root_render_func(template.new_context(dict(limits.context))))
    except Exception as error:
        raise _failure(error, template) from error


def _render_lone_expression(compiled: tuple[Template, int], limits: _Limits) -> Any:
    template, line = compiled
    limits.restart()
    try:
        context = template.new_context(dict(limits.context))
        for _ in template.root_render_func(context):
            pass
        value = _as_data(context.vars["result"])
    except Exception as error:
        failure = _failure(error, template)
        # An undefined value fails in _as_data, outside the template: it is still the expression's line.
        raise (failure if failure.line else ExpressionError(failure.reason, line=line)) from error
    return str(value) if isinstance(value, Markup) else value  # `|e` marks its text safe; the value is text


def render_template(source: str, context: Mapping[str, Any]) -> str:
    """Render a template to text. Raises ExpressionError."""
    with _bounded(context) as limits:
        return _render(source, limits)


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON value (dict values and list items, not keys) as a template,
    for a value that is data (a transform's values, a child run's input, a JSON body).

    A string that is exactly one `{{ expression }}`, whitespace around it allowed, becomes the
    expression's value: a number, boolean, null, list or object as well as a string. Any other string
    (text around the expression, two expressions, a tag) renders to text. Other values are returned
    unchanged; the rendered values together are bounded. Raises ExpressionError."""
    return _render_json(value, context, lone_expressions_keep_type=True)


def render_strings(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON value as a template to text, for values that are text (a URL,
    header values, addresses): `"{{ input.count }}"` is `"4"`. Raises ExpressionError."""
    return _render_json(value, context, lone_expressions_keep_type=False)


def _render_json(value: Any, context: Mapping[str, Any], *, lone_expressions_keep_type: bool) -> Any:
    total = 0

    def walk(item: Any) -> Any:
        nonlocal total
        if isinstance(item, str):
            lone = _compiled(_compile_lone_expression, item) if lone_expressions_keep_type and "{" in item else None
            if lone is None:
                rendered = _render(item, limits)
                total += len(rendered)
            else:
                rendered = _render_lone_expression(lone, limits)
                total += len(rendered) if isinstance(rendered, str) else _measure(rendered)[0]
            if total > MAX_OUTPUT_LENGTH:
                raise ExpressionError(OUTPUT_TOO_LONG)
            return rendered
        if isinstance(item, dict):
            return {key: walk(child) for key, child in item.items()}
        if isinstance(item, list):
            return [walk(child) for child in item]
        return item

    with _bounded(context) as limits:
        try:
            return walk(value)
        except RecursionError:
            raise ExpressionError(TOO_DEEP) from None


def evaluate_expression(source: str, context: Mapping[str, Any]) -> Any:
    """Evaluate an expression, bare or as one `{{ ... }}`, to a value: bool, number, str, None, or a list
    or dict of those (a tuple or generator, such as `rows|selectattr('ok')`, becomes a list). The value may
    be part of the context itself, not a copy. Raises ExpressionError."""
    text = strip_braces(source)
    if not text:
        raise ExpressionError("the expression is empty")
    expression = _compiled(_compile_expression, text)
    with _bounded(context) as limits:
        limits.restart()
        try:
            return _as_data(expression(limits.context))
        except Exception as error:
            raise _failure(error, None) from error


def _as_data(value: Any) -> Any:
    if isinstance(value, (tuple, range, abc.Iterator, abc.MappingView)):  # JSON has lists only
        items = []
        for item in value:
            _tick()
            items.append(item)
            if len(items) > MAX_LIST_LENGTH:
                raise ExpressionError(LIST_TOO_LONG)
        value = items
    if not _measure(value)[3]:
        _not_data(value)
    return value
