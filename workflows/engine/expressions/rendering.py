"""Rendering templates to text, JSON values whose strings are templates, and evaluating expressions, each
within the limits of one render."""

import contextlib
import functools
import traceback
from collections import abc
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import Template, TemplateSyntaxError, nodes
from markupsafe import Markup

from workflows.engine.expressions.checking import strip_braces
from workflows.engine.expressions.environment import environment
from workflows.engine.expressions.errors import TOO_DEEP, ExpressionError, describe
from workflows.engine.expressions.limits import (
    LIST_TOO_LONG,
    MAX_LIST_LENGTH,
    MAX_OUTPUT_LENGTH,
    MAX_TEMPLATE_LENGTH,
    OUTPUT_TOO_LONG,
    Limits,
    current_limits,
    tick,
)
from workflows.engine.expressions.sizes import measure, not_data


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
        raise ExpressionError(describe(error)) from error


@contextlib.contextmanager
def _bounded(context: Mapping[str, Any]) -> Iterator[Limits]:
    token = current_limits.set(Limits(context))
    try:
        yield current_limits.get()
    finally:
        current_limits.reset(token)


def _failure(error: Exception, template: Template | None) -> ExpressionError:
    """The ExpressionError for a failed render, with the template line where it failed, if known."""
    line = None
    for frame, python_line in traceback.walk_tb(error.__traceback__) if template else ():
        if frame.f_code.co_filename == template.filename:
            line = template.get_corresponding_lineno(python_line)
    if isinstance(error, ExpressionError):
        return error if error.line or not line else ExpressionError(error.reason, line=line)
    return ExpressionError(describe(error), line=line)


def _render(source: str, limits: Limits) -> str:
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


def _render_lone_expression(compiled: tuple[Template, int], limits: Limits) -> Any:
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
                total += len(rendered) if isinstance(rendered, str) else measure(rendered)[0]
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
            tick()
            items.append(item)
            if len(items) > MAX_LIST_LENGTH:
                raise ExpressionError(LIST_TOO_LONG)
        value = items
    if not measure(value)[3]:
        not_data(value)
    return value
