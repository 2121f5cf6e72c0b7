"""The bounds of one render: template and value sizes, and the CPU-time deadline its loops, calls,
filters and output check."""

import contextvars
import time
from collections.abc import Mapping
from typing import Any

from workflows.engine.expressions.errors import ExpressionError

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


class Limits:
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


current_limits: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("expression_limits", default=None)


def tick() -> None:
    limits = current_limits.get()
    if limits is not None and time.perf_counter() > limits.deadline:
        limits.check()
