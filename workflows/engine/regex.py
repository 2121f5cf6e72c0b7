"""Regular expressions that users write, matched with RE2: in time linear in the text, or refused.

Python's `re` backtracks: `^(a+)+$` against "a" * 27 + "!" takes seconds, and the match holds the
GIL throughout, so every thread of the process (other requests, the embedded worker) stops with it.
RE2 never backtracks; what only a backtracking engine can do (backreferences, lookaround, atomic
groups, possessive quantifiers) it refuses to compile, and so do we, with UnsupportedPattern.

RE2 is also nearer than `re` to ECMA-262, the dialect JSON Schema names: `\\d` and `\\w` are ASCII
and `$` matches only at the very end. Two escapes that `re` accepted are rewritten to RE2's
spelling: `\\uXXXX` (ECMA-262 too) to `\\x{XXXX}`, and `\\Z` to `\\z`.
"""

import functools
import re

import re2

UNSUPPORTED_PATTERN = (
    "The pattern {pattern!r} cannot be used: {reason}. Patterns are matched with RE2, in time linear "
    "in the text, which has no backreferences (\\1, \\k<name>), lookahead or lookbehind ((?=…), (?!…), "
    "(?<=…), (?<!…)), atomic groups or possessive quantifiers."
)

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would also print each refused pattern on stderr

# A backslash and the character after it, so that an escaped backslash is never read as an escape.
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)", re.DOTALL)


class UnsupportedPattern(ValueError):
    """A user's pattern that RE2 cannot compile (backtracking-only syntax, or simply invalid)."""


def _re2_spelling(pattern: str) -> str:
    def rewrite(escape: re.Match) -> str:
        body = escape.group(1)
        if body[0] == "u" and len(body) == 5:
            return f"\\x{{{body[1:]}}}"
        return "\\z" if body == "Z" else escape.group(0)

    return _ESCAPE.sub(rewrite, pattern)


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str):
    try:
        return re2.compile(_re2_spelling(pattern), _OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else "not a valid pattern"
        reason = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise UnsupportedPattern(UNSUPPORTED_PATTERN.format(pattern=pattern, reason=reason)) from None


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be used (the message of UnsupportedPattern), or None when it can."""
    try:
        _compiled(pattern)
    except UnsupportedPattern as error:
        return str(error)
    return None


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text` (JSON Schema's rule); raises UnsupportedPattern."""
    compiled = _compiled(pattern)
    try:
        return compiled.search(text) is not None
    except UnicodeEncodeError:
        # A lone surrogate has no UTF-8 form: match the bytes `surrogatepass` gives it instead of
        # failing (the request parsers refuse such text, but a value may come from elsewhere).
        return compiled.search(text.encode("utf-8", "surrogatepass")) is not None
