"""What every node type declares: its config schema, which fields are templates, and its branches.

A node type is a class with class attributes only; the registry maps type names to these classes.
Validation here needs no database, so the API, the admin, import and tests all share it.
"""

from collections.abc import Iterator
from typing import Any, ClassVar

from jsonschema import Draft202012Validator

from workflows.engine.expressions import ExpressionSyntaxError, check_expression, check_template

Errors = dict[str, list[str]]


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside a JSON value, with its dotted path (dict keys and list indexes)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}")


def _schema_error_path(error) -> str:
    parts = [str(part) for part in error.absolute_path]
    # "required" errors point at the object; name the missing property instead.
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        parts += missing[:1]
    return ".".join(["config", *parts])


class NodeType:
    name: ClassVar[str]
    description: ClassVar[str]
    # JSON Schema (draft 2020-12) for `Node.config`.
    config_schema: ClassVar[dict] = {"type": "object", "additionalProperties": False, "properties": {}}
    # Config keys whose strings, at any depth, are templates rendered at run time.
    template_fields: ClassVar[tuple[str, ...]] = ()
    # Config keys holding one expression that evaluates to a value (a condition, a list of items).
    expression_fields: ClassVar[tuple[str, ...]] = ()
    # Whether the node's `prompt` / `content` are used (as templates), and whether the prompt is required.
    uses_prompt: ClassVar[bool] = False
    requires_prompt: ClassVar[bool] = False
    uses_content: ClassVar[bool] = False
    # Labels its outgoing edges may carry ("true"/"false" for condition); empty means unlabelled only.
    branches: ClassVar[tuple[str, ...]] = ()
    # Whether running it twice has the same effect as once (a crash mid-call may re-run it).
    idempotent: ClassVar[bool] = True

    @classmethod
    def normalize_config(cls, config: dict) -> dict:
        """Rewrite accepted aliases into the stored form. Called before validation."""
        return config

    @classmethod
    def validate(cls, *, config: dict, prompt: str = "", content: str = "") -> tuple[dict, Errors]:
        """Return the normalized config and the errors, keyed `config.<path>`, `prompt`, `content`."""
        errors: Errors = {}
        if not isinstance(config, dict):
            return config, {"config": ["Must be a JSON object."]}
        config = cls.normalize_config(dict(config))
        for error in sorted(Draft202012Validator(cls.config_schema).iter_errors(config), key=str):
            errors.setdefault(_schema_error_path(error), []).append(error.message)
        if errors:
            return config, errors

        templates = [item for key in cls.template_fields if key in config for item in _strings(config[key], key)]
        if cls.uses_prompt:
            templates.append(("prompt", prompt))
        if cls.uses_content:
            templates.append(("content", content))
        for path, source in templates:
            try:
                check_template(source)
            except ExpressionSyntaxError as error:
                field = path if path in {"prompt", "content"} else f"config.{path}"
                errors.setdefault(field, []).append(str(error))
        for key in cls.expression_fields:
            if isinstance(config.get(key), str):
                try:
                    check_expression(config[key])
                except ExpressionSyntaxError as error:
                    errors.setdefault(f"config.{key}", []).append(str(error))
        if cls.requires_prompt and not prompt.strip():
            errors.setdefault("prompt", []).append(f"A {cls.name} node needs a prompt.")
        return config, errors
