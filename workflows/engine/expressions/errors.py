"""What the expression language raises: at save time a syntax error, at run time an ExpressionError."""

from dataclasses import dataclass

from jinja2.exceptions import SecurityError

from workflows.engine.errors import PermanentError

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


# Errors Python raises while parsing or compiling a template that is too deeply nested or too large.
TOO_DEEP_ERRORS = (RecursionError, MemoryError, SyntaxError)


def describe(error: BaseException) -> str:
    if isinstance(error, TOO_DEEP_ERRORS):
        return TOO_DEEP
    if isinstance(error, SecurityError):
        return UNSAFE + str(error)
    if isinstance(error, KeyError) and error.args:
        return f"missing key {error.args[0]!r}"
    return str(error) or type(error).__name__
