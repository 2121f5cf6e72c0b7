"""JSON Schema's regular expressions, matched with RE2 (workflows.engine.regex) instead of Python's `re`.

jsonschema matches `pattern`, `patternProperties`, and the property names `additionalProperties`
checks against `patternProperties`, with `re`, whose backtracking a user's schema can make take
minutes. `linear_time(validator_class)` is the class with those three keywords matched by RE2;
`pattern_problems(schema)` names the patterns of a schema that RE2 refuses (check it when a schema
is saved, and before applying one saved earlier).

`unevaluatedProperties` also matches `patternProperties`, deep inside jsonschema, as it follows the
schema's references. Rather than copy that walk, a schema with both keywords is refused.
"""

import functools
from collections.abc import Iterator
from typing import Any

import attrs
import referencing.jsonschema
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator
from referencing import Specification

from workflows.engine import regex

UNEVALUATED_WITH_PATTERNS = (
    "unevaluatedProperties cannot be used in a schema that also has patternProperties; "
    "use additionalProperties beside the patternProperties instead."
)


def _pattern(validator: Validator, pattern: str, instance: Any, schema: dict) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not regex.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Validator, patterns: dict, instance: Any, schema: dict) -> Iterator:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if regex.search(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _additional_properties(original):
    def additional_properties(validator: Validator, allowed: Any, instance: Any, schema: dict) -> Iterator:
        patterns = schema.get("patternProperties")
        if not patterns or not validator.is_type(instance, "object"):
            # No pattern to match: jsonschema's own keyword, messages and all.
            yield from original(validator, allowed, instance, schema)
            return
        known = schema.get("properties", {})
        extras = [
            name
            for name in instance
            if name not in known and not any(regex.search(pattern, name) for pattern in patterns)
        ]
        if validator.is_type(allowed, "object"):
            for name in extras:
                yield from validator.descend(instance[name], allowed, path=name)
        elif not allowed and extras:
            # jsonschema's message for this case, word for word.
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(name) for name in sorted(extras))
            listed = ", ".join(repr(pattern) for pattern in sorted(patterns))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {listed}")

    return additional_properties


_LINEAR: set[type[Validator]] = set()


def _evolve(self: Validator, **changes: Any) -> Validator:
    # jsonschema's evolve() picks the class for a subschema by its `$schema`, which would be the
    # stock class (and `re`) for a subschema that names its draft, or for one reached through a
    # meta-schema's `$dynamicRef`. Same choice here, but of the linear-time class.
    schema = changes.setdefault("schema", self.schema)
    new_class = linear_time(validators.validator_for(schema, default=type(self)))
    for field in attrs.fields(type(self)):
        if field.init and field.alias not in changes:
            changes[field.alias] = getattr(self, field.name)
    return new_class(**changes)


@functools.cache
def linear_time(validator_class: type[Validator]) -> type[Validator]:
    """`validator_class` with every user pattern matched by RE2, in this schema and in every
    subschema it reaches, whatever draft they name.

    Its validators raise regex.UnsupportedPattern on a pattern RE2 refuses; `pattern_problems`
    finds those beforehand.
    """
    if validator_class in _LINEAR:
        return validator_class
    keywords = {"pattern": _pattern, "patternProperties": _pattern_properties}
    if "additionalProperties" in validator_class.VALIDATORS:
        keywords["additionalProperties"] = _additional_properties(validator_class.VALIDATORS["additionalProperties"])
    linear = validators.extend(validator_class, keywords)
    linear.evolve = _evolve
    _LINEAR.add(linear)
    return linear


def pattern_problems(schema: Any, validator_class: type[Validator] | None = None) -> list[str]:
    """Why `schema`'s patterns cannot be used: [] when they all can. For a schema that passed its
    dialect's `check_schema`. Walks every subschema as jsonschema reads them for that dialect, not
    data such as `default` or `enum`."""
    validator_class = validator_class or validators.validator_for(schema, default=Draft202012Validator)
    specification = referencing.jsonschema.specification_with(
        validator_class.ID_OF(validator_class.META_SCHEMA) or "urn:unknown-dialect", default=Specification.OPAQUE
    )
    problems: list[str] = []
    seen = {"unevaluatedProperties": False, "patternProperties": False}
    pending = [specification.create_resource(schema)]
    while pending:
        resource = pending.pop()
        pending += resource.subresources()
        contents = resource.contents
        if not isinstance(contents, dict):
            continue
        named = contents.get("patternProperties")
        patterns = [pattern for pattern in named if isinstance(pattern, str)] if isinstance(named, dict) else []
        if isinstance(contents.get("pattern"), str):
            patterns.append(contents["pattern"])
        problems += filter(None, map(regex.pattern_problem, patterns))
        seen["patternProperties"] |= bool(named)
        seen["unevaluatedProperties"] |= "unevaluatedProperties" in contents
    if all(seen.values()):
        problems.append(UNEVALUATED_WITH_PATTERNS)
    return problems
