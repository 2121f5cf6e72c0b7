"""Checks when a definition is saved: a template or an expression that does not parse is refused then,
naming its line, rather than failing a run."""

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
