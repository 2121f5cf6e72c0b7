"""Checks when a definition is saved: a template or an expression that does not parse is refused then,
naming its line, rather than failing a run."""

from collections.abc import Iterator
from typing import Any

from jinja2 import TemplateSyntaxError

from workflows.engine.expressions.environment import environment
from workflows.engine.expressions.errors import TOO_DEEP_ERRORS, ExpressionSyntaxError, describe
from workflows.engine.expressions.limits import MAX_TEMPLATE_LENGTH


def strip_braces(source: str) -> str:
    """Expressions may be written bare or as one `{{ ... }}`, the way they appear in templates."""
    text = source.strip()
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        return text[2:-2].strip()
    return text


def strings_in(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside a JSON value, with its dotted path (dict keys and list indexes): the
    templates of a value whose strings are rendered (render_value, render_strings)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_in(item, f"{path}.{index}")


def template_errors(value: Any, path: str) -> dict[str, list[str]]:
    """The syntax errors of the templates inside a JSON value, keyed by their dotted path."""
    errors: dict[str, list[str]] = {}
    for where, source in strings_in(value, path):
        try:
            check_template(source)
        except ExpressionSyntaxError as error:
            errors.setdefault(where, []).append(str(error))
    return errors


def check_template(source: str) -> None:
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise ExpressionSyntaxError(f"longer than {MAX_TEMPLATE_LENGTH} characters")
    try:
        environment.parse(source)
    except TemplateSyntaxError as error:
        raise ExpressionSyntaxError(error.message or "invalid template", error.lineno) from error
    except (*TOO_DEEP_ERRORS, ValueError) as error:
        raise ExpressionSyntaxError(describe(error)) from error


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
    except (*TOO_DEEP_ERRORS, ValueError) as error:
        raise ExpressionSyntaxError(describe(error)) from error
