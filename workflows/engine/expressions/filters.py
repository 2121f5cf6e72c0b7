"""Jinja's filters and globals, bounded: those that can build large values check sizes first, and every
filter checks the deadline and the size of what it returns."""

import functools
import re
from typing import Any

from jinja2 import filters
from jinja2.utils import pass_environment, pass_eval_context

from workflows.engine.expressions.errors import ExpressionError
from workflows.engine.expressions.limits import (
    LIST_TOO_LONG,
    MAX_LIST_LENGTH,
    MAX_RANGE,
    MAX_STRING_LENGTH,
    RANGE_TOO_LONG,
    STRING_TOO_LONG,
    tick,
)
from workflows.engine.expressions.operators import check_percent, check_replace
from workflows.engine.expressions.sizes import (
    as_text,
    check_new,
    check_width,
    measure,
    not_data,
    scalar_size,
    text_weight,
)


def do_center(value: str, width: int = 80) -> str:
    check_width(width)
    return filters.do_center(value, width)


def do_indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    step = len(width) if isinstance(width, str) else width
    check_width(step)
    if isinstance(step, int) and len(s) + (s.count("\n") + 1) * step > MAX_STRING_LENGTH:
        raise ExpressionError(STRING_TOO_LONG)
    return filters.do_indent(s, width, first, blank)


@pass_environment
def do_wordwrap(environment, s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
    check_width(width)
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
    check_percent(value, kwargs or args)
    return filters.do_format(value, *args, **kwargs)


@pass_eval_context
def do_replace(eval_ctx, s, old, new, count=None):
    old, new = as_text(old, MAX_STRING_LENGTH), as_text(new, MAX_STRING_LENGTH)
    check_replace(s, old, new, count)
    return filters.do_replace(eval_ctx, s, old, new, count)


@pass_eval_context
def do_join(eval_ctx, value, d="", attribute=None):
    if attribute is not None:
        value = map(filters.make_attrgetter(eval_ctx.environment, attribute), value)
    separator, texts, total = as_text(d, MAX_STRING_LENGTH), [], 0
    for item in value:
        text = as_text(item, MAX_STRING_LENGTH)
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
    if scalar_size(fill_with) is None:
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
    check_width(step)
    weight, depth, count, plain = measure(value)
    if not plain:
        not_data(value)
    if weight + count * (1 + step * depth) > MAX_STRING_LENGTH:
        raise ExpressionError(STRING_TOO_LONG)
    return filters.do_tojson(eval_ctx, value, indent)


def do_pprint(value: Any) -> str:
    weight, depth, count, plain = measure(value)
    if not plain:
        not_data(value)
    if weight + count * (1 + depth) > MAX_STRING_LENGTH:
        raise ExpressionError(STRING_TOO_LONG)
    return filters.do_pprint(value)


REPLACED_FILTERS = {
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


def guard_filter(name: str, function: Any) -> Any:
    offset = 1 if hasattr(function, "jinja_pass_arg") else 0
    takes_text, takes_data = name in _TEXT_FILTERS, name in _DATA_FILTERS

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        if len(args) > offset:
            value = args[offset]
            if takes_text and not isinstance(value, str):
                args = (*args[:offset], as_text(value, MAX_STRING_LENGTH), *args[offset + 1 :])
            elif takes_data and not isinstance(value, str) and text_weight(value) > MAX_STRING_LENGTH:
                raise ExpressionError(STRING_TOO_LONG)
        return check_new(function(*args, **kwargs), (*args[offset:], *kwargs.values()))

    return guarded


def new_dict(*args: Any, **kwargs: Any) -> dict:
    # The dict type itself would expose unbound methods: `dict.pop(input, 'topic')` mutates the context.
    return dict(*args, **kwargs)


def bounded_range(*args: int) -> range:
    try:
        numbers = range(*args)
        too_long = len(numbers) > MAX_RANGE
    except OverflowError:
        too_long = True
    if too_long:
        raise ExpressionError(RANGE_TOO_LONG)
    return numbers
