import pytest
from jsonschema import Draft202012Validator

from workflows.engine.nodes.base import NodeType
from workflows.engine.nodes.delay import DelayNode
from workflows.engine.nodes.document import DocumentNode
from workflows.engine.nodes.email import EmailNode
from workflows.engine.nodes.http_request import HttpRequestNode
from workflows.engine.nodes.registry import NODE_TYPES, node_type_get
from workflows.engine.nodes.webhook import WebhookNode

# One accepted config per type, as clients send them; document needs a prompt, text uses content.
VALID = [
    ("document", {}, "Write about {{ input.topic }}", ""),
    (
        "document",
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "credential": "openai-main",
            "system": "You write for {{ input.audience }}.",
            "temperature": 0.2,
            "max_tokens": 2000,
            "format": "json",
            "title": "Report on {{ input.topic }}",
        },
        "Summarise {{ nodes.fetch.output.body }}",
        "",
    ),
    ("text", {}, "", ""),
    ("text", {"format": "text", "title": "{{ input.name }}"}, "", "Dear {{ input.name }},"),
    ("transform", {"values": {"name": "{{ input.name }}", "tags": ["a", "{{ index }}"], "n": 3, "ok": None}}, "", ""),
    ("transform", {"values": "{{ input.name | upper }}"}, "", ""),
    ("http_request", {"url": "https://example.org/{{ input.id }}"}, "", ""),
    (
        "http_request",
        {
            "url": "https://example.org/items",
            "method": "POST",
            "headers": {"X-Token": "{{ input.token }}", "Accept": "application/json"},
            "query": {"page": 2, "q": "{{ input.q }}", "exact": True},
            "json": {"name": "{{ input.name }}", "count": 1},
            "credential": "api-bearer",
            "timeout": 0.5,
            "expected_status": [200, 201, 409],
            "follow_redirects": False,
            "retry_on_crash": True,
        },
        "",
        "",
    ),
    ("http_request", {"url": "https://example.org", "method": "PUT", "form": {"a": "{{ input.a }}"}}, "", ""),
    ("http_request", {"url": "https://example.org", "method": "PATCH", "body": "raw {{ input.a }}"}, "", ""),
    (
        "webhook",
        {
            "url": "https://example.org/post",
            "method": "POST",
            "headers": {"Content-Type": "application/json"},
            "body": {"message": "Hello from workflow!"},
        },
        "",
        "",
    ),
    (
        "webhook",
        {"url": "https://example.org/hook", "secret": "hook-signing", "timeout": 300, "retry_on_crash": True},
        "",
        "",
    ),
    ("delay", {"seconds": 2.5}, "", ""),
    ("delay", {"seconds": 0}, "", ""),
    ("delay", {"until": "{{ input.when }}"}, "", ""),
    ("delay", {"duration": 2}, "", ""),
    ("condition", {"expression": "nodes.check.output.status == 200"}, "", ""),
    ("condition", {"expression": "{{ input.count > 3 }}"}, "", ""),
    ("loop", {"items": "input.rows", "workflow": "process-row"}, "", ""),
    (
        "loop",
        {
            "items": "{{ nodes.fetch.output.body.rows }}",
            "workflow": "0d5c6a1e-4a4f-4a7b-9a59-5e0c2b8f9a11",
            "input": {"row": "{{ item }}", "position": "{{ index }}"},
            "concurrency": 50,
            "max_items": 10000,
        },
        "",
        "",
    ),
    ("subworkflow", {"workflow": "child"}, "", ""),
    ("subworkflow", {"workflow": "child", "input": {"name": "{{ input.name }}"}, "wait": False}, "", ""),
    ("approval", {}, "", ""),
    (
        "approval",
        {
            "message": "Publish {{ nodes.draft.title }}?",
            "approvers": ["ann@example.org", "bob@example.org"],
            "timeout": 86400,
            "on_timeout": "approve",
        },
        "",
        "",
    ),
    ("email", {"to": ["{{ input.email }}"], "subject": "Hi", "body": "Hello"}, "", ""),
    (
        "email",
        {
            "to": ["a@example.org"],
            "cc": ["b@example.org"],
            "bcc": [],
            "subject": "Report {{ run.id }}",
            "body": "<p>{{ nodes.doc.content }}</p>",
            "html": True,
        },
        "",
        "",
    ),
    ("notify", {"channel": "ops-hook", "message": "Run {{ run.id }} finished"}, "", ""),
    ("notify", {"channel": "team-slack", "message": "Done", "title": "{{ workflow.name }}", "level": "error"}, "", ""),
    ("notify", {"channel": "inbox", "template": "failures", "link": "/dashboard/runs/{{ run.id }}/"}, "", ""),
]

# Rejected configs and the error key they must produce.
INVALID = [
    ("document", {"provider": "gemini"}, "config.provider"),
    ("document", {"temperature": 2.5}, "config.temperature"),
    ("document", {"max_tokens": 0}, "config.max_tokens"),
    ("document", {"format": "html"}, "config.format"),
    ("document", {"prompt": "in the wrong place"}, "config"),
    ("text", {"format": "pdf"}, "config.format"),
    ("text", {"content": "in the wrong place"}, "config"),
    ("transform", {}, "config.values"),
    ("http_request", {}, "config.url"),
    ("http_request", {"url": ""}, "config.url"),
    ("http_request", {"url": "https://example.org/" + "a" * 2048}, "config.url"),
    ("http_request", {"url": "https://example.org", "method": "TRACE"}, "config.method"),
    ("http_request", {"url": "https://example.org", "method": "get"}, "config.method"),
    ("http_request", {"url": "https://example.org", "headers": {"X-Count": 3}}, "config.headers.X-Count"),
    ("http_request", {"url": "https://example.org", "headers": {"Bad Name": "x"}}, "config.headers"),
    ("http_request", {"url": "https://example.org", "query": {"q": {"nested": 1}}}, "config.query.q"),
    ("http_request", {"url": "https://example.org", "form": {"a": 1}}, "config.form.a"),
    ("http_request", {"url": "https://example.org", "json": {}, "body": "x"}, "config"),
    ("http_request", {"url": "https://example.org", "json": {}, "form": {}}, "config"),
    ("http_request", {"url": "https://example.org", "form": {}, "body": "x"}, "config"),
    ("http_request", {"url": "https://example.org", "timeout": 0}, "config.timeout"),
    ("http_request", {"url": "https://example.org", "timeout": 301}, "config.timeout"),
    ("http_request", {"url": "https://example.org", "expected_status": [99]}, "config.expected_status.0"),
    ("http_request", {"url": "https://example.org", "expected_status": [200, 600]}, "config.expected_status.1"),
    ("http_request", {"url": "https://example.org", "expected_status": []}, "config.expected_status"),
    ("http_request", {"url": "https://example.org", "follow_redirects": "yes"}, "config.follow_redirects"),
    ("http_request", {"url": "https://example.org", "verify": False}, "config"),
    ("webhook", {"method": "POST"}, "config.url"),
    ("webhook", {"url": "https://example.org", "method": "GET"}, "config.method"),
    ("webhook", {"url": "https://example.org", "secret": ""}, "config.secret"),
    ("webhook", {"url": "https://example.org", "timeout": 0.01}, "config.timeout"),
    ("webhook", {"url": "https://example.org", "headers": {"A": ["b"]}}, "config.headers.A"),
    ("delay", {}, "config"),
    ("delay", {"seconds": -1}, "config.seconds"),
    ("delay", {"seconds": 31_536_001}, "config.seconds"),
    ("delay", {"seconds": "10"}, "config.seconds"),
    ("delay", {"seconds": 1, "until": "2030-01-01T00:00:00Z"}, "config"),
    ("delay", {"duration": 1, "seconds": 2}, "config"),
    ("condition", {}, "config.expression"),
    ("condition", {"expression": ""}, "config.expression"),
    ("condition", {"expression": "   "}, "config.expression"),
    ("loop", {"workflow": "child"}, "config.items"),
    ("loop", {"items": "input.rows"}, "config.workflow"),
    ("loop", {"items": "input.rows", "workflow": "child", "concurrency": 0}, "config.concurrency"),
    ("loop", {"items": "input.rows", "workflow": "child", "concurrency": 51}, "config.concurrency"),
    ("loop", {"items": "input.rows", "workflow": "child", "max_items": 10_001}, "config.max_items"),
    ("loop", {"items": "input.rows", "workflow": "child", "input": ["x"]}, "config.input"),
    ("subworkflow", {}, "config.workflow"),
    ("subworkflow", {"workflow": "child", "wait": "no"}, "config.wait"),
    ("subworkflow", {"workflow": "child", "input": "x"}, "config.input"),
    ("approval", {"approvers": ["not-an-email"]}, "config.approvers.0"),
    ("approval", {"approvers": "ann@example.org"}, "config.approvers"),
    ("approval", {"timeout": 59}, "config.timeout"),
    ("approval", {"timeout": 2_592_001}, "config.timeout"),
    ("approval", {"on_timeout": "escalate"}, "config.on_timeout"),
    ("email", {"subject": "s", "body": "b"}, "config.to"),
    ("email", {"to": [], "subject": "s", "body": "b"}, "config.to"),
    ("email", {"to": ["a@example.org"] * 51, "subject": "s", "body": "b"}, "config.to"),
    ("email", {"to": "a@example.org", "subject": "s", "body": "b"}, "config.to"),
    ("email", {"to": ["a@example.org"], "body": "b"}, "config.subject"),
    ("email", {"to": ["a@example.org"], "subject": "s" * 999, "body": "b"}, "config.subject"),
    ("email", {"to": ["a@example.org"], "subject": "s"}, "config.body"),
    ("email", {"to": ["a@example.org"], "cc": ["c"] * 51, "subject": "s", "body": "b"}, "config.cc"),
    ("notify", {"message": "m"}, "config.channel"),
    ("notify", {"channel": "", "message": "m"}, "config.channel"),
    ("notify", {"channel": "slack"}, "config"),
    ("notify", {"channel": "slack", "message": "m", "template": "t"}, "config"),
    ("notify", {"channel": "slack", "url": "https://x.org/h", "message": "m"}, "config"),
    ("notify", {"channel": "slack", "message": "m", "level": "loud"}, "config.level"),
]


def _validate(type_name: str, config, prompt: str = "", content: str = ""):
    return node_type_get(type_name).validate(config=config, prompt=prompt, content=content)


def test_registry_lists_the_twelve_types_in_design_order():
    assert list(NODE_TYPES) == [
        "document",
        "text",
        "transform",
        "http_request",
        "webhook",
        "delay",
        "condition",
        "loop",
        "subworkflow",
        "approval",
        "email",
        "notify",
    ]


@pytest.mark.parametrize("name", list(NODE_TYPES))
def test_each_registered_type_is_named_by_its_key(name):
    node_type = node_type_get(name)
    assert issubclass(node_type, NodeType)
    assert node_type.name == name


def test_unknown_type_raises_key_error():
    with pytest.raises(KeyError, match="spreadsheet"):
        node_type_get("spreadsheet")


@pytest.mark.parametrize("node_type", list(NODE_TYPES.values()), ids=list(NODE_TYPES))
def test_schema_is_strict_valid_and_documents_every_property(node_type):
    schema = node_type.config_schema
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert node_type.description.endswith(".")
    assert node_type.__doc__
    for key, prop in schema["properties"].items():
        assert prop.get("description"), key
        if "default" in prop:
            assert not list(Draft202012Validator(prop).iter_errors(prop["default"])), key
    for field in (*node_type.template_fields, *node_type.value_fields, *node_type.expression_fields):
        assert field in schema["properties"]


@pytest.mark.parametrize(("type_name", "config", "prompt", "content"), VALID)
def test_valid_config_is_accepted(type_name, config, prompt, content):
    _, errors = _validate(type_name, config, prompt, content)
    assert errors == {}


@pytest.mark.parametrize(("type_name", "config", "path"), INVALID)
def test_invalid_config_is_rejected_at_its_path(type_name, config, path):
    _, errors = _validate(type_name, config, prompt="p")
    assert list(errors) == [path]


@pytest.mark.parametrize("name", list(NODE_TYPES))
def test_config_that_is_not_an_object_is_rejected(name):
    _, errors = _validate(name, ["not", "an", "object"], prompt="p")
    assert list(errors) == ["config"]


def test_document_requires_a_prompt():
    _, errors = DocumentNode.validate(config={}, prompt="  \n")
    assert list(errors) == ["prompt"]
    assert "document node needs a prompt" in errors["prompt"][0]


def test_at_most_one_http_body_names_the_conflicting_keys():
    _, errors = HttpRequestNode.validate(config={"url": "https://example.org", "json": {"a": 1}, "form": {"b": "c"}})
    assert len(errors["config"]) == 1
    assert "['json', 'form']" in errors["config"][0]


def test_http_request_and_webhook_and_email_are_not_idempotent():
    assert not HttpRequestNode.idempotent
    assert not WebhookNode.idempotent
    assert not EmailNode.idempotent
    assert DelayNode.idempotent


def test_condition_has_true_and_false_branches():
    assert node_type_get("condition").branches == ("true", "false")


def test_delay_renames_duration_to_seconds():
    config, errors = DelayNode.validate(config={"duration": 2})
    assert errors == {}
    assert config == {"seconds": 2}


def test_delay_leaves_duration_alongside_seconds_for_the_schema_to_reject():
    config, errors = DelayNode.validate(config={"duration": 2, "seconds": 3})
    assert config == {"duration": 2, "seconds": 3}
    assert "'duration' was unexpected" in errors["config"][0]


def test_delay_normalization_does_not_change_the_callers_dict():
    original = {"duration": 2}
    DelayNode.validate(config=original)
    assert original == {"duration": 2}


# Template syntax errors: (type, config, prompt, content, error key); each source breaks on line 2.
TEMPLATE_ERRORS = [
    ("document", {"system": "ok\n{{ input.x "}, "p", "", "config.system"),
    ("document", {"title": "ok\n{% if %}"}, "p", "", "config.title"),
    ("document", {}, "Hello\n{{ input.name ", "", "prompt"),
    ("text", {"title": "a\n{{ }}"}, "", "", "config.title"),
    ("text", {}, "", "Dear\n{% for x in %}", "content"),
    ("transform", {"values": {"list": ["ok", "x\n{{ a.b( }}"]}}, "", "", "config.values.list.1"),
    ("transform", {"values": "x\n{{"}, "", "", "config.values"),
    ("http_request", {"url": "https://example.org/\n{{ input.id "}, "", "", "config.url"),
    (
        "http_request",
        {"url": "https://x.org", "headers": {"X-Token": "Bearer\n{{ token"}},
        "",
        "",
        "config.headers.X-Token",
    ),
    ("http_request", {"url": "https://x.org", "query": {"q": "a\n{{ q "}}, "", "", "config.query.q"),
    ("http_request", {"url": "https://x.org", "json": {"a": {"b": "\n{% endif %}"}}}, "", "", "config.json.a.b"),
    ("http_request", {"url": "https://x.org", "form": {"f": "\n{{ f "}}, "", "", "config.form.f"),
    ("http_request", {"url": "https://x.org", "body": "raw\n{{ body "}, "", "", "config.body"),
    ("webhook", {"url": "https://x.org", "body": {"message": "hi\n{{ input. }}"}}, "", "", "config.body.message"),
    ("webhook", {"url": "https://x.org", "headers": {"X-Run": "\n{{ run.id "}}, "", "", "config.headers.X-Run"),
    ("delay", {"until": "\n{{ input.when "}, "", "", "config.until"),
    ("loop", {"items": "input.rows", "workflow": "w", "input": {"row": "\n{{ item "}}, "", "", "config.input.row"),
    ("subworkflow", {"workflow": "w", "input": {"a": ["\n{{ x "]}}, "", "", "config.input.a.0"),
    ("approval", {"message": "Publish?\n{{ title "}, "", "", "config.message"),
    ("email", {"to": ["a@x.org", "\n{{ input.email "], "subject": "s", "body": "b"}, "", "", "config.to.1"),
    ("email", {"to": ["a@x.org"], "bcc": ["\n{{ b "], "subject": "s", "body": "b"}, "", "", "config.bcc.0"),
    ("email", {"to": ["a@x.org"], "subject": "s\n{{ s ", "body": "b"}, "", "", "config.subject"),
    ("email", {"to": ["a@x.org"], "subject": "s", "body": "b\n{% if x %}"}, "", "", "config.body"),
    ("notify", {"channel": "hook", "link": "https://x.org\n{{ u ", "message": "m"}, "", "", "config.link"),
    ("notify", {"channel": "hook", "message": "m\n{{ m "}, "", "", "config.message"),
    ("notify", {"channel": "hook", "message": "m", "title": "t\n{{ t "}, "", "", "config.title"),
]


@pytest.mark.parametrize(("type_name", "config", "prompt", "content", "path"), TEMPLATE_ERRORS)
def test_template_syntax_error_is_reported_at_its_field_with_the_line(type_name, config, prompt, content, path):
    _, errors = _validate(type_name, config, prompt, content)
    assert list(errors) == [path]
    assert "line 2" in errors[path][0]
    assert errors[path][0].startswith("Template syntax error")


def test_strings_outside_template_fields_are_not_parsed_as_templates():
    config = {"provider": "template", "model": "{{ not a template", "credential": "{% nope"}
    _, errors = DocumentNode.validate(config=config, prompt="p")
    assert errors == {}


EXPRESSION_ERRORS = [
    ("condition", {"expression": "nodes.check.output.status =="}),
    ("condition", {"expression": "{{ input.a and }}"}),
    ("condition", {"expression": "{{ }}"}),
    ("condition", {"expression": "input.a\n and (b"}),
    ("loop", {"items": "input.rows[", "workflow": "w"}),
    ("loop", {"items": "{{ }}", "workflow": "w"}),
]


@pytest.mark.parametrize(("type_name", "config"), EXPRESSION_ERRORS)
def test_expression_syntax_error_is_reported_at_its_field(type_name, config):
    _, errors = _validate(type_name, config)
    key = f"config.{NODE_TYPES[type_name].expression_fields[0]}"
    assert list(errors) == [key]
    assert errors[key][0].startswith("Template syntax error")


def test_expression_fields_are_expressions_not_templates():
    # A bare expression is not valid template syntax everywhere, and `{% %}` is not an expression.
    _, errors = _validate("condition", {"expression": "{% if x %}yes{% endif %}"})
    assert "config.expression" in errors
