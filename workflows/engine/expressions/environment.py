"""The sandboxed Jinja environment every template and expression runs in: immutable values, strict undefined
names that say where they were looked up, and compiled code with the hooks that bound a render."""

import functools
import time
import types
from collections import abc, deque
from collections.abc import Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2 import utils as jinja_utils
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from markupsafe import Markup

from workflows.engine.expressions.errors import ExpressionError
from workflows.engine.expressions.filters import REPLACED_FILTERS, bounded_range, guard_filter, new_dict
from workflows.engine.expressions.limits import (
    MAX_OUTPUT_LENGTH,
    MAX_STRING_LENGTH,
    OUTPUT_TOO_LONG,
    STRING_TOO_LONG,
    Limits,
    current_limits,
    tick,
)
from workflows.engine.expressions.operators import (
    BoundedEscapeFormatter,
    BoundedFormatter,
    check_binop,
    check_method,
)
from workflows.engine.expressions.sizes import as_text, check_new

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
    limits = current_limits.get()
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
        self.globals.update(range=bounded_range, dict=new_dict, namespace=Namespace)
        for name, function in list(self.filters.items()):
            self.filters[name] = guard_filter(name, REPLACED_FILTERS.get(name, function))

    @staticmethod
    def finalize_output(value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            return value  # printed by str() as usual
        return as_text(value, MAX_OUTPUT_LENGTH)

    def concat(self, pieces: Any) -> str:  # type: ignore[override]
        # Joins the output of a template, a macro or a {% set %} block. Gathering the pieces costs
        # one reference each (and their number is bounded by time); joining them is what can be large.
        parts = pieces if isinstance(pieces, list) else list(pieces)
        if sum(map(len, parts)) > MAX_OUTPUT_LENGTH:
            raise ExpressionError(OUTPUT_TOO_LONG)
        return "".join(parts)

    @staticmethod
    def concat_values(values: tuple) -> str:
        texts = [as_text(value, MAX_STRING_LENGTH) for value in values]
        if sum(len(text) for text in texts) > MAX_STRING_LENGTH:
            raise ExpressionError(STRING_TOO_LONG)
        return "".join(texts)

    @staticmethod
    def new_value(value: Any) -> Any:
        return check_new(value)

    @staticmethod
    def loop_items(iterable: Any) -> Iterator[Any]:
        limits, clock = current_limits.get(), time.perf_counter
        if limits is None:
            yield from iterable
            return
        for item in iterable:
            if clock() > limits.deadline:
                limits.check()
            yield item

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        size = check_binop(operator, left, right)
        result = self.binop_table[operator](left, right)
        if size is not None:
            (current_limits.get() or Limits({})).remember(result, size)
        return check_new(result)

    def call(self, context: Any, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        tick()
        if not self.is_safe_callable(function):
            raise SecurityError(f"{function!r} is not safely callable")
        owner = getattr(function, "__self__", None)
        if owner is not None:
            args = check_method(owner, getattr(function, "__name__", ""), args, kwargs)
        result = context.call(function, *args, **kwargs)
        return check_new(result, (owner, *args, *kwargs.values()))

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
        formatter = (
            BoundedEscapeFormatter(self, escape=template.escape)
            if isinstance(template, Markup)
            else BoundedFormatter(self)
        )
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                args, kwargs = (), args[0]
            return type(template)(formatter.vformat(template, args, kwargs))

        return functools.update_wrapper(wrapper, value)


environment = _Environment(undefined=_Undefined, autoescape=False, keep_trailing_newline=True)
