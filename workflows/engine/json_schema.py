"""JSON Schemas users write (a workflow's `input_schema`, a document node's `json_schema`), checked and applied.

Left to itself, jsonschema fetches a `$ref` (or `$dynamicRef`) it cannot find in the schema with
urllib: `http://127.0.0.1:…/` is a request from the server, outside the egress guard, and `file:///…`
reads a local file. Every validator here is built with a registry that retrieves nothing, so only
references within the schema (and to the standard meta-schemas, which ship with jsonschema) resolve,
and `schema_problems` refuses any other reference when the schema is saved.
"""

from typing import Any

import referencing.jsonschema
from jsonschema import Draft202012Validator, SchemaError, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from jsonschema_specifications import REGISTRY as META_SCHEMAS
from referencing import Registry, Resource, Specification
from referencing.exceptions import InvalidAnchor, NoSuchAnchor, NoSuchResource, PointerToNowhere, Unresolvable

from workflows.engine import json_schema_patterns, regex

REFERENCE_KEYWORDS = ("$ref", "$dynamicRef")

NOT_A_SCHEMA = "Not a valid JSON Schema at {path}: {message}"
UNKNOWN_DIALECT = "$schema {dialect!r} is not a JSON Schema version we know; leave it out for draft 2020-12."
OUTSIDE_REFERENCE = (
    "{keyword} {ref!r} points outside this schema; only references within it (such as '#/$defs/name') are allowed."
)
DANGLING_REFERENCE = "{keyword} {ref!r} names nothing in this schema."
ENDLESS_REFERENCES = "The schema's references loop without end."


def _retrieve_nothing(uri: str) -> Resource:
    raise NoSuchResource(ref=uri)


# Validators resolve against this and the standard meta-schemas (which ship with jsonschema; it adds
# them itself, so the registry passed stays empty and cheap to combine with them) and retrieve nothing.
REGISTRY: Registry = Registry(retrieve=_retrieve_nothing)
RESOLVABLE: Registry = META_SCHEMAS.combine(REGISTRY)


class UnusableSchema(ValueError):
    """The schema cannot be applied: a reference that does not resolve within it, or one that loops."""


def validator(schema: dict | bool) -> Validator:
    """A validator for `schema` (its `$schema` picks the draft; 2020-12 by default) that fetches nothing
    and matches patterns with RE2 (in linear time)."""
    validator_class = json_schema_patterns.linear_time(validator_for(schema, default=Draft202012Validator))
    return validator_class(schema, registry=REGISTRY)


def schema_problems(schema: Any) -> list[str]:
    """Why `schema` may not be saved as a user's JSON Schema: [] when it may."""
    if isinstance(schema, dict) and "$schema" in schema and validator_for(schema, default=None) is None:
        return [UNKNOWN_DIALECT.format(dialect=schema["$schema"])]
    validator_class = validator_for(schema, default=Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except SchemaError as error:
        path = "/".join(str(part) for part in error.absolute_path) or "(root)"
        return [NOT_A_SCHEMA.format(path=path, message=error.message)]
    return _reference_problems(schema, validator_class) + json_schema_patterns.pattern_problems(schema, validator_class)


def _reference_problems(schema: dict | bool, validator_class: type[Validator]) -> list[str]:
    # Resolved as jsonschema will resolve them: each reference against the base URI (`$id`) of the
    # subschema it is in, walking only the keywords that hold subschemas (a `$ref` inside `enum` or
    # `default` is data, not a reference).
    specification = referencing.jsonschema.specification_with(
        validator_class.ID_OF(validator_class.META_SCHEMA) or "urn:unknown-dialect", default=Specification.OPAQUE
    )
    root = specification.create_resource(schema)
    problems: list[str] = []
    pending = [(root, RESOLVABLE.resolver_with_root(root))]
    while pending:
        resource, resolver = pending.pop()
        contents = resource.contents
        for keyword in REFERENCE_KEYWORDS if isinstance(contents, dict) else ():
            ref = contents.get(keyword)
            if not isinstance(ref, str):
                continue
            try:
                resolver.lookup(ref)
            except (PointerToNowhere, NoSuchAnchor, InvalidAnchor):
                problems.append(DANGLING_REFERENCE.format(keyword=keyword, ref=ref))
            except Unresolvable:
                problems.append(OUTSIDE_REFERENCE.format(keyword=keyword, ref=ref))
        pending += [(sub, resolver.in_subresource(sub)) for sub in resource.subresources()]
    return problems


def schema_errors(schema: dict | bool, value: Any) -> list[ValidationError]:
    """Every way `value` fails `schema`, ordered by where in `value`, then by message.

    Raises UnusableSchema when the schema cannot be applied (saved before `schema_problems` refused
    such schemas, or a reference loop that only this value reaches).
    """
    if problems := json_schema_patterns.pattern_problems(schema):
        raise UnusableSchema(problems[0])  # saved before such patterns were refused
    try:
        errors = list(validator(schema).iter_errors(value))
    except regex.UnsupportedPattern as error:
        raise UnusableSchema(str(error)) from error
    except Unresolvable as error:
        raise UnusableSchema(str(error)) from error
    except RecursionError as error:
        raise UnusableSchema(ENDLESS_REFERENCES) from error
    return sorted(errors, key=lambda error: ([str(part) for part in error.absolute_path], error.message))
