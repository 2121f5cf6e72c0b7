"""The one expression language: Jinja2 in an immutable sandbox with strict undefined names.

Templates (`Hello {{ input.name }}`) render to strings; expressions (`nodes.check.output.status == 200`)
evaluate to a value and are used where a value, not text, is wanted (conditions, loop items). Both are
parsed when a definition is saved, so a syntax error is a 400 naming the node and the field rather
than a failed run. Rendering comes with the engine.
"""

from dataclasses import dataclass

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Templates are stored as text; a bounded length keeps a parse (and later a render) cheap.
MAX_TEMPLATE_LENGTH = 100_000

environment = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@dataclass(frozen=True)
class ExpressionSyntaxError(Exception):
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"Template syntax error at {where}{self.message}"


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
