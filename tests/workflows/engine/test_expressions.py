import datetime
import time
import tracemalloc
import uuid

import pytest

from workflows.engine.errors import PermanentError
from workflows.engine.expressions import limits, rendering
from workflows.engine.expressions.checking import check_template
from workflows.engine.expressions.errors import ExpressionError, ExpressionSyntaxError
from workflows.engine.expressions.rendering import evaluate_expression, render_strings, render_template, render_value

CONTEXT = {
    "input": {
        "topic": "solar power",
        "tags": ["pv", "grid"],
        "count": 4,
        "rows": [{"n": 1, "ok": True}, {"n": 2, "ok": False}],
    },
    "nodes": {
        "outline": {"content": "1. Intro\n2. Costs", "title": "Outline", "output": {"sections": 2}},
        "fetch": {"output": {"status": 200, "body": "<html>"}, "content": "", "title": ""},
    },
    "run": {"id": "5f1c", "trigger": "api", "started_at": "2024-05-01T10:00:00Z"},
    "workflow": {"id": "9a2b", "name": "Reports", "version": 3},
    "item": {"heading": "costs"},
    "index": 2,
}


def _fails_fast(call, *args):
    """Call, expecting an ExpressionError; return it with the elapsed seconds and peak extra memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ExpressionError) as caught:
            call(*args)
        return caught.value, time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- Rendering ---------------------------------------------------------------------------------------


def test_templates_see_every_context_name():
    source = (
        "{{ input.topic }}|{{ nodes.outline.content }}|{{ nodes.outline.title }}|{{ nodes.fetch.output.status }}|"
        "{{ item.heading }}|{{ index }}|{{ run.id }}|{{ workflow.name }}"
    )
    assert render_template(source, CONTEXT) == "solar power|1. Intro\n2. Costs|Outline|200|costs|2|5f1c|Reports"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ input.topic|upper }}", "SOLAR POWER"),
        ("{{ input.tags|join(', ') }}", "pv, grid"),
        ("{{ input.rows|map(attribute='n')|join('+') }}", "1+2"),
        ("{{ nodes.outline.output|tojson }}", '{"sections": 2}'),
        ("{{ input.audience|default('everyone') }}", "everyone"),
        ("{{ input.rows|selectattr('ok')|list|length }}", "1"),
        ("{% for tag in input.tags %}{{ loop.index }}.{{ tag }} {% endfor %}", "1.pv 2.grid "),
        ("{% if input.count > 3 %}many{% else %}few{% endif %}", "many"),
        ("{{ '%s has %d tags' % (input.topic, input.tags|length) }}", "solar power has 2 tags"),
        ("{{ '{} v{}'.format(workflow.name, workflow.version) }}", "Reports v3"),
        ("{{ input.topic ~ ' #' ~ index }}", "solar power #2"),
        (
            "{% set ns = namespace(total=0) %}{% for r in input.rows %}{% set ns.total = ns.total + r.n %}{% endfor %}"
            "{{ ns.total }}",
            "3",
        ),
        ("{% macro h(text) %}# {{ text }}{% endmacro %}{{ h(nodes.outline.title) }}", "# Outline"),
        ("{{ range(3)|list }} {{ input.tags + ['x'] }}", "[0, 1, 2] ['pv', 'grid', 'x']"),
        ("no tags at all\n", "no tags at all\n"),
    ],
)
def test_renders_the_template_language(source, expected):
    assert render_template(source, CONTEXT) == expected


def test_a_key_wins_over_a_dict_method_of_the_same_name():
    context = {"input": {"items": ["a", "b"], "update": 1}}
    assert render_template("{% for x in input.items %}{{ x }}{% endfor %} {{ input.update }}", context) == "ab 1"
    assert render_template("{{ input.values()|list|length }}", context) == "2"


def test_dates_and_ids_in_the_context_print_as_text():
    started = datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.UTC)
    context = {"run": {"id": uuid.UUID(int=1), "started_at": started}}
    assert render_template("{{ run.id }} {{ run.started_at.year }} {{ [run.started_at] }}", context) == (
        f"00000000-0000-0000-0000-000000000001 2024 [{started!r}]"
    )


def test_render_value_renders_every_string_in_nested_json_but_not_keys():
    value = {
        "title": "Report on {{ input.topic }}",
        "{{ keys }}": "stay {{ index }}",
        "items": [1, "{{ index + 1 }}", {"deep": ["{{ run.id }}", None, True, 2.5]}],
        "plain": "no template",
    }
    assert render_value(value, CONTEXT) == {
        "title": "Report on solar power",
        "{{ keys }}": "stay 2",
        "items": [1, 3, {"deep": ["5f1c", None, True, 2.5]}],
        "plain": "no template",
    }
    assert render_value(7, CONTEXT) == 7


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # Exactly one expression, whitespace around it allowed: the expression's own value.
        ("{{ input.count }}", 4),
        ("{{ input.count * 2 }}", 8),
        ("{{ 1 + 2 }}", 3),
        ("{{ input.count / 8 }}", 0.5),
        ("{{ 2.5 }}", 2.5),
        ("{{ input.count > 3 }}", True),
        ("{{ false }}", False),
        ("{{ none }}", None),
        ("{{ input.tags }}", ["pv", "grid"]),
        ("{{ input.rows[0] }}", {"n": 1, "ok": True}),
        ("{{ {'a': index, 'b': [1, 2]} }}", {"a": 2, "b": [1, 2]}),
        ("{{ input.rows|selectattr('ok') }}", [{"n": 1, "ok": True}]),  # a generator becomes a list
        ("{{ (1, 'a') }}", [1, "a"]),
        ("  {{ index }}\n", 2),
        ("{{ input.count > 3 }} ", True),
        ("{{- index -}}", 2),
        ("{{ input.topic }}", "solar power"),
        ("{{ 'a' }}", "a"),
        ("{{ '1' }}", "1"),  # a string stays a string, whatever it looks like
        ("{{ input.count|string }}", "4"),
        ("{{ input.topic|e }}", "solar power"),
        # Text around the expression, two expressions, or a tag: text.
        ("n = {{ input.count }}", "n = 4"),
        ("{{ input.count }}!", "4!"),
        ("{{ index }}{{ index }}", "22"),
        ("{{ index }} {{ index }}", "2 2"),
        ("{% if true %}{{ index }}{% endif %}", "2"),
        ("{{ none }} and {{ true }}", "None and True"),
        ("[{{ input.tags|join(',') }}]", "[pv,grid]"),
    ],
)
def test_a_lone_expression_keeps_its_type_and_anything_else_is_text(source, expected):
    rendered = render_value({"value": source, "in_list": [source]}, CONTEXT)
    assert rendered == {"value": expected, "in_list": [expected]}
    assert type(rendered["value"]) is type(expected)
    assert render_value(source, CONTEXT) == expected


def test_render_strings_renders_every_string_to_text():
    value = {"count": "{{ input.count }}", "flags": ["{{ true }}", "{{ none }}"], "n": 1}
    assert render_strings(value, CONTEXT) == {"count": "4", "flags": ["True", "None"], "n": 1}


def test_a_lone_expression_fails_as_a_template_would():
    with pytest.raises(ExpressionError) as caught:
        render_value({"a": "\n{{ input.missing }}"}, CONTEXT)
    assert str(caught.value).startswith("line 2: 'input' has no attribute 'missing'")
    with pytest.raises(ExpressionError, match="is not data"):
        render_value("{{ range }}", CONTEXT)
    with pytest.raises(ExpressionError, match="syntax error"):
        render_value("{{ input.count + }}", CONTEXT)


def test_render_value_caps_a_lone_expression_value_too():
    source = "{{ ['x' * 1000] * 600 }}"
    assert len(render_value({"a": source}, CONTEXT)["a"]) == 600
    error, _, _ = _fails_fast(render_value, {"a": source, "b": [source]}, CONTEXT)
    assert error.reason == limits.OUTPUT_TOO_LONG


def test_render_value_caps_the_total_of_its_strings():
    text = "{{ 'x' * 600000 }}"
    assert len(render_value({"a": text}, CONTEXT)["a"]) == 600_000
    error, _, _ = _fails_fast(render_value, {"a": text, "b": [text]}, CONTEXT)
    assert error.reason == limits.OUTPUT_TOO_LONG


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("nodes.fetch.output.status == 200", True),
        ("{{ input.count > 10 }}", False),
        ("input.tags", ["pv", "grid"]),
        ("input.count * 2", 8),
        ("input.missing_or_none is defined", False),
        ("none", None),
        ("nodes.outline.output", {"sections": 2}),
        ("input.rows|selectattr('ok')", [{"n": 1, "ok": True}]),
        ("input.rows|map(attribute='n')", [1, 2]),
        ("range(3)", [0, 1, 2]),
        ("(1, 'a')", [1, "a"]),
        ("'{}-{}'.format(run.id, index)", "5f1c-2"),
        ("{{ 9**9**9 }}", (9**9) ** 9),  # Jinja's ** is left-associative: 257 bits, not a bomb
    ],
)
def test_expressions_evaluate_to_python_values(source, expected):
    assert evaluate_expression(source, CONTEXT) == expected


def test_the_context_is_read_only():
    for source in [
        "{{ input.tags.append('x') }}",
        "{{ input.update({'topic': 'x'}) }}",
        "{{ input.tags.pop() }}",
        "{{ input.tags|attr('pop')() }}",
        # Reached through the type, the methods are unbound: stock Jinja lets these through.
        "{{ dict.pop(input, 'topic') }}",
        "{{ dict.update(input, {'topic': 'x'}) }}",
        "{{ (input.tags|list).__class__.append(input.tags, 'x') }}",
    ]:
        with pytest.raises(ExpressionError):
            render_template(source, CONTEXT)
    assert CONTEXT["input"]["tags"] == ["pv", "grid"]
    assert CONTEXT["input"]["topic"] == "solar power"


# --- Errors ------------------------------------------------------------------------------------------


def test_expression_errors_are_permanent():
    assert issubclass(ExpressionError, PermanentError)
    assert not ExpressionError("x").retryable


def test_an_undefined_name_is_named():
    with pytest.raises(ExpressionError) as caught:
        render_template("Hello {{ secret }}", CONTEXT)
    assert str(caught.value) == "line 1: 'secret' is undefined"
    with pytest.raises(ExpressionError, match="'secret' is undefined"):
        evaluate_expression("secret", CONTEXT)


def test_a_missing_attribute_names_where_it_was_looked_up_and_the_line():
    with pytest.raises(ExpressionError) as caught:
        render_template("Title\n\n{{ nodes.outline.content }} {{ nodes.outlne.content }}", CONTEXT)
    assert str(caught.value) == "line 3: 'nodes' has no attribute 'outlne' (it has: outline, fetch)"
    assert caught.value.line == 3
    assert caught.value.details == {"line": 3}
    with pytest.raises(ExpressionError, match=r"'input\.tags' has no element 5"):
        render_template("{{ input.tags[5] }}", CONTEXT)
    with pytest.raises(ExpressionError, match=r"'nodes\.fetch\.output' has no attribute 'headers'"):
        evaluate_expression("nodes.fetch.output.headers", CONTEXT)


def test_a_missing_attribute_inside_a_macro_reports_the_macro_line():
    source = "{% macro show(node) %}\n{{ node.missing }}\n{% endmacro %}\n{{ show(nodes.fetch) }}"
    with pytest.raises(ExpressionError, match=r"^line 2: 'nodes.fetch' has no attribute 'missing'"):
        render_template(source, CONTEXT)


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("{% if %}", 1, "Expected an expression"),
        ("one\ntwo\n{{ 1 +* 2 }}", 3, "unexpected '*'"),
        ("{% for x in input.tags %}\n{{ x }}\n", 2, "Unexpected end of template"),
    ],
)
def test_syntax_errors_carry_their_line(source, line, message):
    with pytest.raises(ExpressionError) as caught:
        render_template(source, CONTEXT)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: syntax error: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 1 / 0 }}", "line 1: division by zero"),
        ("{{ input.topic + 1 }}", 'line 1: can only concatenate str (not "int") to str'),
        ("{{ input.count|round(method='up') }}", "line 1: method must be common, ceil or floor"),
        ("{{ '%(a)s' % {} }}", "line 1: missing key 'a'"),
        ("{{ input.tags|map('nofilter')|list }}", "line 1: No filter named 'nofilter'."),
        ("{% include 'other.txt' %}", "line 1: no loader for this environment specified"),
        ("{{ [missing] }}", "line 1: 'missing' is undefined"),
        ("{{ input.tags|map('upper') }}", "line 1: a generator is not data and cannot be used as text"),
        ("{{ input.tags.index }}", "line 1: a function is not data and cannot be used as text"),
    ],
)
def test_every_failure_is_an_expression_error_with_a_useful_message(source, message):
    with pytest.raises(ExpressionError) as caught:
        render_template(source, CONTEXT)
    assert str(caught.value).startswith(message)


def test_messages_quoting_a_large_value_are_shortened():
    with pytest.raises(ExpressionError) as caught:
        render_template("{{ ('a' * 100000)|filesizeformat }}", CONTEXT)
    assert len(str(caught.value)) < 600


def test_an_expression_value_must_be_data():
    with pytest.raises(ExpressionError, match="a function is not data"):
        evaluate_expression("input.tags.index", CONTEXT)
    with pytest.raises(ExpressionError, match="the expression is empty"):
        evaluate_expression("{{ }}", CONTEXT)


def test_unsafe_access_keeps_the_sandbox_message_with_a_prefix():
    with pytest.raises(ExpressionError) as caught:
        render_template("{{ ''.__class__ }}", CONTEXT)
    assert str(caught.value) == "line 1: Unsafe expression: access to attribute '__class__' of 'str' object is unsafe."


# --- Template injection ------------------------------------------------------------------------------

INJECTION_PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self }}",
    "{{ config }}",
    "{{ request }}",
    "{{ settings.SECRET_KEY }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ (1).__class__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ input.__class__ }}",
    "{{ '{0.__class__}'.format(input) }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(joiner) }}",
    "{{ '%s'.format }}",
    "{{ ''|attr('format') }}",
    "{{ input|map('upper') }}",
    "{{ input.tags|map(attribute='__class__')|list }}",
    "{{ range.__globals__ }}",
    "{{ dict.mro() }}",
    "{{ dict.__subclasses__() }}",
    "{{ input.items().__iter__ }}",
    "{{ (input.tags|map('upper')).gi_frame }}",
    "{{ namespace().__class__.__base__ }}",
    "{{ input['__class__'] }}",
    "{{ '%s' % (input|map('upper')) }}",
]


@pytest.mark.parametrize("payload", INJECTION_PAYLOADS)
def test_template_injection_fails_and_returns_nothing_from_python(payload):
    with pytest.raises(ExpressionError) as caught:
        render_template(payload, CONTEXT)
    message = str(caught.value)
    for leak in ("<class", "<function", "<built-in", " at 0x", "subprocess", "posix"):
        assert leak not in message


@pytest.mark.parametrize("payload", INJECTION_PAYLOADS[:17])
def test_template_injection_fails_as_an_expression_too(payload):
    with pytest.raises(ExpressionError):
        evaluate_expression(payload, CONTEXT)


# --- Bounded resources -------------------------------------------------------------------------------

RESOURCE_BOMBS = [
    # huge strings and lists
    "{{ 'a' * 10**8 }}",
    "{{ 'a' * 100000000 }}",
    "{{ [1] * 10**8 }}",
    "{{ 'ab'|center(10**8) }}",
    "{{ 'x'|indent(10**8) }}",
    "{{ '%s' % ('a' * 10**7) }}",
    "{{ 'a'|wordwrap(10**8) }}",
    "{{ 'a' ~ 'b' * 10**8 }}",
    "{{ range(10000)|join('x' * 10000) }}",
    "{{ 'ab'.center(10**8) }}",
    "{{ 'a'.ljust(10**8) }}",
    "{{ '\t'.expandtabs(10**8) }}",
    "{{ 'x'.join(['y' * 100000] * 20) }}",
    "{{ ('a' * 1000000)|replace('', 'xxxx') }}",
    "{{ '{:>100000000}'.format(1) }}",
    "{{ '%100000000s' % 'a' }}",
    "{{ '%s'|format('a' * 10**7) }}",
    "{{ (1).to_bytes(100000000, 'big') }}",
    "{{ range(10)|batch(100000000)|list }}",
    "{{ range(10)|slice(100000000)|list }}",
    "{{ ([[1] * 1000] * 1000)|sum(start=[]) }}",
    "{{ range(10**9)|list }}",
    "{{ ('a' * 1000000)|wordwrap(1) }}",
    "{{ ('é' * 1000000).encode('punycode') }}",
    "{{ ('a' * 1000000).encode('idna') }}",
    "{{ lipsum(1000000) }}",
    "{% set x = 'y' * 1000000 %}{% for i in range(1000) %}{{ x }}{% endfor %}",
    "{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}",
    "{% set x = 'y' * 1000000 %}{% set s %}{% for i in range(100) %}{{ x }}{% endfor %}{% endset %}{{ s|length }}",
    # huge numbers
    "{{ 10**10000 }}",
    "{{ 9**(9**9) }}",
    "{{ 2 ** 100000 }}",
    "{{ ('9' * 4000)|int }}",
    # values that share parts and would print, compare or serialize exponentially large
    "{% set ns = namespace(a=[1]) %}{% for i in range(100) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ 1 }}",
    "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(100) %}{% set ns.a = [ns.a, ns.a] %}"
    "{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
    "{% set ns = namespace(a=[1]) %}{% for i in range(100) %}{% set ns.a = dict(x=ns.a, y=ns.a) %}{% endfor %}",
    "{% set ns = namespace(a=[1]) %}{% for i in range(100) %}{% set ns.a = ns.a + ns.a %}{% endfor %}",
    "{% set ns = namespace(a=1) %}{% for i in range(10000) %}{% set ns.a = (ns.a,) %}{% endfor %}{{ {ns.a: 1} }}",
    # deep nesting
    "{% if true %}" * 2000 + "{% endif %}" * 2000,
    "{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    # long loops and recursion
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}{% endfor %}{% endfor %}"
    "{% endfor %}",
    "{% set r = range(10000) %}{% for i in r %}{% for j in r %}{% for k in r %}{% endfor %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "{% for i in range(10000) recursive %}{{ loop(range(10000)) }}{% endfor %}",
]


@pytest.mark.parametrize("bomb", RESOURCE_BOMBS)
def test_resource_bombs_fail_fast_with_little_memory(bomb):
    error, elapsed, peak = _fails_fast(render_template, bomb, CONTEXT)
    assert elapsed < 1.0, error
    assert peak < 20_000_000, error


@pytest.mark.parametrize(
    "bomb",
    ["'a' * 10**8", "[1] * 10**8", "10**10000", "range(10)|batch(10**8)|list", "range(10000)|join('x' * 10000)"],
)
def test_expressions_are_bounded_too(bomb):
    _, elapsed, peak = _fails_fast(evaluate_expression, bomb, CONTEXT)
    assert elapsed < 1.0
    assert peak < 20_000_000


def test_long_loops_stop_at_the_time_limit():
    source = "line one\n{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
    error, elapsed, _ = _fails_fast(render_template, source, CONTEXT)
    assert str(error) == f"line 2: {limits.TOO_SLOW}"
    assert elapsed < 1.0


def test_output_over_the_cap_fails():
    error, _, _ = _fails_fast(render_template, "{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}", CONTEXT)
    assert error.reason == limits.OUTPUT_TOO_LONG
    assert len(render_template("{% for i in range(900) %}{{ 'x' * 1000 }}{% endfor %}", CONTEXT)) == 900_000


def test_limits_leave_ordinary_sizes_alone():
    assert render_template("{{ 2 ** 4095 > 0 }} {{ ('a' * 1000)|center(2000)|length }}", CONTEXT) == "True 2000"
    assert evaluate_expression("range(10000)|map('string')|join(',')|length", CONTEXT) == 48_889
    assert len(evaluate_expression("[input.tags] * 1000", CONTEXT)) == 1000


def test_deep_nesting_is_a_syntax_error_when_saved():
    with pytest.raises(ExpressionSyntaxError, match="nested"):
        check_template("{% if true %}" * 2000 + "{% endif %}" * 2000)


# --- Compilation cache -------------------------------------------------------------------------------


def test_a_template_is_compiled_once_and_reused():
    rendering._compile_template.cache_clear()
    source = "Write about {{ input.topic }} ({{ index }})"
    assert render_template(source, CONTEXT) == render_template(source, {**CONTEXT, "index": 2})
    render_value({"prompt": source}, CONTEXT)
    info = rendering._compile_template.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_an_expression_is_compiled_once_and_reused():
    rendering._compile_expression.cache_clear()
    assert evaluate_expression("input.count > 3", CONTEXT) is True
    assert evaluate_expression("{{ input.count > 3 }}", {"input": {"count": 1}}) is False
    info = rendering._compile_expression.cache_info()
    assert (info.misses, info.hits) == (1, 1)
