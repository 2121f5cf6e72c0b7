"""What every node type declares: its config schema, which fields are templates, and its branches.

A node type is a class with class attributes only; the registry maps type names to these classes.
Validation here needs no database, so the API, the admin, import and tests all share it.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from workflows.engine import json_schema
from workflows.engine.expressions.checking import check_expression, check_template, strings_in
from workflows.engine.expressions.errors import ExpressionSyntaxError
from workflows.engine.expressions.rendering import render_strings, render_template, render_value

Errors = dict[str, list[str]]
# The key of a step's state holding a prompt that replaces its node's (set when regenerating).
PROMPT_OVERRIDE = "prompt_override"
# The keys of a step's state holding a reviewer's comment and the draft it is about, which the document
# node sends after its prompt (set when an approval asks for changes).
REVIEW_COMMENT = "review_comment"
REVIEW_DRAFT = "review_draft"


def _schema_error_path(error) -> str:
    parts = [str(part) for part in error.absolute_path]
    # "required" errors point at the object; name the missing property instead.
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        parts += missing[:1]
    return ".".join(["config", *parts])


class TextStream(Protocol):
    """Where a node streams the text it is generating (the engine publishes it as step.delta events)."""

    def write(self, text: str) -> None: ...

    def restart(self) -> None:
        """The text written so far is void: the generation starts again."""


@dataclass
class StepContext:
    """What a node type sees while it executes. Plain data: node types never touch the database."""

    run_id: str
    step_id: str
    node_key: str
    attempt: int
    workspace_id: str
    # The expression context: input, nodes.<key>.output/content/title, run, workflow.
    expressions: dict
    # Kept between the phases of a suspended node (a delay's deadline, a loop's progress).
    state: dict = field(default_factory=dict)
    # Finished child runs of this step: [{"index", "status", "output", "error"}], by index.
    children: list[dict] = field(default_factory=list)
    # time.monotonic() by which the step must be done, or None.
    deadline: float | None = None
    # For node types with `uses_context`: the documents of the step's ancestors, oldest first, as
    # {"node_key", "title", "content", "document_id"} (document_id None for a text node's).
    documents: list[dict] = field(default_factory=list)
    # Publishes text as it is generated (step.delta events); None when nobody set it up.
    stream: "TextStream | None" = None

    @property
    def idempotency_key(self) -> str:
        """Sent with outgoing calls so that receivers can drop a repeated delivery."""
        return f"{self.run_id}:{self.node_key}"


@dataclass
class ChildRun:
    workflow: str  # id or slug, in the same workspace
    input: dict
    index: int


@dataclass
class NodeResult:
    output: Any = None
    usage: dict = field(default_factory=dict)
    # A generated document to store as a Document (title, content, format, provider, model, tokens,
    # cost, latency_ms, metadata, source_ids): the engine writes it with the step's success.
    document: dict | None = None
    # Runs started without waiting for them (a subworkflow with wait: false); their ids join the output.
    spawn: list[ChildRun] = field(default_factory=list)


@dataclass
class Suspend:
    """The node waits: until a time, for a person, or for child runs. execute() runs again on resume."""

    reason: str  # "delay", "approval", "children"
    until: datetime | None = None
    state: dict = field(default_factory=dict)
    spawn: list[ChildRun] = field(default_factory=list)
    # A short message for people watching (shown on the dashboard and in events).
    message: str = ""


class NodeType:
    name: ClassVar[str]
    description: ClassVar[str]
    # Where the builder's palette shows it: documents, logic, integrations or people.
    group: ClassVar[str]
    # A node of this type as a workflow's definition would hold it (GET node-types shows it).
    example: ClassVar[dict]
    # JSON Schema (draft 2020-12) for `Node.config`.
    config_schema: ClassVar[dict] = {"type": "object", "additionalProperties": False, "properties": {}}
    # Config keys whose strings, at any depth, are templates rendered to text at run time (a URL, headers).
    template_fields: ClassVar[tuple[str, ...]] = ()
    # Config keys holding JSON data whose strings are templates, where a string that is exactly one
    # `{{ expression }}` gives the expression's value: `"{{ input.n * 2 }}"` is a number, not "4".
    value_fields: ClassVar[tuple[str, ...]] = ()
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
    # The Celery queue its steps run on. "engine" is for control work and steps that take moments;
    # a step that waits on the outside world has a queue of its own, so it never holds up the engine.
    queue: ClassVar[str] = "engine"
    # Quick, CPU-only work that a worker may run right after the step before it (no broker hop).
    inline: ClassVar[bool] = False
    # Whether it is given its ancestors' documents (StepContext.documents) and may stream text.
    uses_context: ClassVar[bool] = False
    # Whether it may spend what budgets limit (tokens, cost): only such steps look budgets up.
    spends: ClassVar[bool] = False

    @classmethod
    def safe_to_rerun(cls, config: dict) -> bool:
        """Whether a step interrupted by a worker crash may run again rather than fail as interrupted."""
        return cls.idempotent or bool(config.get("retry_on_crash"))

    @classmethod
    def prepare(cls, node: dict, context: StepContext) -> dict:
        """The node's inputs with every template rendered: what execute() receives and the step records."""
        config = dict(node["config"])
        for key in cls.template_fields:
            if key in config:
                config[key] = render_strings(config[key], context.expressions)
        for key in cls.value_fields:
            if key in config:
                config[key] = render_value(config[key], context.expressions)
        prepared = {"config": config, "title": node.get("title", "")}
        if cls.uses_prompt:
            prepared["prompt"] = render_template(node.get("prompt", ""), context.expressions)
        if cls.uses_content:
            prepared["content"] = render_template(node.get("content", ""), context.expressions)
        return prepared

    @classmethod
    def spending_estimate(cls, prepared: dict, context: StepContext) -> tuple[int, Decimal] | None:
        """The most its call may spend, (tokens, cost), for the budgets to reserve before execute();
        None for a node that spends nothing they limit."""
        return None

    @classmethod
    def spent(cls, usage: dict) -> tuple[int, Decimal] | None:
        """What the call spent, (tokens, cost), read from its NodeResult's usage."""
        return None

    @classmethod
    def execute(cls, prepared: dict, context: StepContext) -> "NodeResult | Suspend":
        """Do the node's work. Raise TransientError or PermanentError (workflows.engine.errors) on failure."""
        raise NotImplementedError(f"{cls.__name__} must define execute()")

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
        for error in sorted(json_schema.validator(cls.config_schema).iter_errors(config), key=str):
            errors.setdefault(_schema_error_path(error), []).append(error.message)
        if errors:
            return config, errors

        templates = [
            item
            for key in (*cls.template_fields, *cls.value_fields)
            if key in config
            for item in strings_in(config[key], key)
        ]
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
