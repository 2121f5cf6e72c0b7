"""Users' regular expressions run on RE2: linear in the text, or refused with a message that says why.

The catastrophic cases are asserted for their answers, not their times: under Python's `re` each of
them would run for hours (and hold the GIL throughout), so a test that finishes is the proof.
"""

import pytest
from jsonschema import Draft4Validator, Draft7Validator, Draft201909Validator, Draft202012Validator, validators

from workflows.engine import json_schema_patterns, regex
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.specs import NODE_SCHEMA, WORKFLOW_SCHEMA

CATASTROPHIC = "^(a+)+$"
EVIL_TEXT = "a" * 40 + "!"


def errors(schema, value, validator_class=Draft202012Validator) -> list[str]:
    checker = json_schema_patterns.linear_time(validator_class)(schema)
    return sorted(error.message for error in checker.iter_errors(value))


def test_a_catastrophic_pattern_answers_correctly():
    assert regex.search(CATASTROPHIC, EVIL_TEXT) is False
    assert regex.search(CATASTROPHIC, "a" * 40) is True
    assert regex.search("(x+x+)+y", "x" * 100_000) is False


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", r"(?P<x>a)(?P=x)", r"\k<x>", "a(?=b)", "a(?!b)", "(?<=a)b", "(?<!a)b", "(?>a)", "a++"],
)
def test_patterns_that_need_backtracking_are_refused_with_the_reason(pattern):
    with pytest.raises(regex.UnsupportedPattern) as refused:
        regex.search(pattern, "ab")
    assert refused.value.args[0].startswith(f"The pattern {pattern!r} cannot be used: ")
    assert "backreferences" in str(refused.value)
    assert regex.pattern_problem(pattern) == str(refused.value)


def test_invalid_patterns_are_refused_too():
    assert "missing )" in regex.pattern_problem("(a")
    assert regex.pattern_problem("^[a-z]+$") is None


def test_ecma_and_python_escapes_keep_working():
    assert regex.search(r"^[\u0041-\u005A]+$", "ABC") is True
    assert regex.search(r"^[\u0041-\u005A]+$", "ABc") is False
    assert regex.search(r"^\\u0041$", "\\u0041") is True  # an escaped backslash, then a plain u
    assert regex.search(r"^abc\Z", "abc") is True
    assert regex.search(r"\p{Greek}", "Ωmega") is True


def test_matching_follows_ecma_262_where_python_did_not():
    assert regex.search("^abc$", "abc\n") is False  # `re` lets `$` match before a final newline
    assert regex.search(r"^\d+$", "١٢٣") is False  # Arabic-Indic digits: `\d` is ASCII


def test_a_lone_surrogate_is_matched_not_an_error():
    assert regex.search("^a.b$", "a\ud800b") is True
    assert regex.search("^ab$", "a\ud800b") is False


DRAFTS = [Draft4Validator, Draft7Validator, Draft201909Validator, Draft202012Validator]


@pytest.mark.parametrize("validator_class", DRAFTS)
def test_schema_patterns_run_in_linear_time_in_every_draft(validator_class):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "pattern": CATASTROPHIC}},
        "patternProperties": {CATASTROPHIC: {"type": "integer"}},
        "additionalProperties": False,
    }
    value = {"name": EVIL_TEXT, "a" * 10: "not a number", EVIL_TEXT: 1}
    assert errors(schema, value, validator_class) == sorted(
        [
            f"'{EVIL_TEXT}' does not match any of the regexes: '{CATASTROPHIC}'",
            f"'{EVIL_TEXT}' does not match '{CATASTROPHIC}'",
            "'not a number' is not of type 'integer'",
        ]
    )


def test_a_subschema_that_names_another_draft_is_matched_with_re2_too():
    # jsonschema switches to the class of the draft a subschema names (`$schema`): the stock one.
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "pattern": CATASTROPHIC}
    schema = {"properties": {"name": draft7}, "$defs": {"again": draft7}, "items": {"$ref": "#/$defs/again"}}
    assert errors(schema, {"name": EVIL_TEXT}) == [f"'{EVIL_TEXT}' does not match '{CATASTROPHIC}'"]
    assert errors(schema, [EVIL_TEXT]) == [f"'{EVIL_TEXT}' does not match '{CATASTROPHIC}'"]


def test_property_names_are_matched_with_re2():
    schema = {"propertyNames": {"pattern": CATASTROPHIC}}
    assert errors(schema, {EVIL_TEXT: 1}) == [f"'{EVIL_TEXT}' does not match '{CATASTROPHIC}'"]


SCHEMAS = [
    {"pattern": "^a"},
    {"type": "object", "patternProperties": {"^x-": {"type": "string"}, "[0-9]": {"minimum": 3}}},
    {"patternProperties": {"^x-": {}}, "additionalProperties": False},
    {"patternProperties": {"^x-": {}}, "additionalProperties": {"type": "integer"}},
    {"properties": {"a": {}}, "patternProperties": {"b$": {}}, "additionalProperties": False},
    {"properties": {"a": {}}, "additionalProperties": False},
    {"additionalProperties": {"type": "string"}},
    {"items": {"pattern": "^[a-z]+$"}, "contains": {"pattern": "z"}},
]
VALUES = [
    "abc",
    "bcd",
    ["abc", "xyz"],
    ["ABC"],
    {},
    {"a": 1},
    {"x-a": "s", "x-b": 2, "1": 1, "22": 5},
    {"ab": 1, "b": "no", "c": 3},
    {"a": "s", "c": 1},
    7,
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_same_answers_as_jsonschema_itself_on_safe_patterns(schema):
    stock = Draft202012Validator(schema)
    for value in VALUES:
        assert errors(schema, value) == sorted(error.message for error in stock.iter_errors(value)), value


def test_pattern_problems_names_each_refused_pattern_in_any_subschema():
    schema = {
        "properties": {"a": {"pattern": r"(a)\1"}, "b": {"items": {"not": {"propertyNames": {"pattern": "a++"}}}}},
        "patternProperties": {"(?=x)": {}},
        "$defs": {"fine": {"pattern": "^ok$"}},
        "default": {"pattern": r"(a)\1"},  # data, not a schema
    }
    problems = json_schema_patterns.pattern_problems(schema)
    assert sorted(problem.split(" cannot")[0] for problem in problems) == [
        "The pattern '(?=x)'",
        "The pattern '(a)\\\\1'",
        "The pattern 'a++'",
    ]
    assert json_schema_patterns.pattern_problems({"properties": {"a": {"pattern": "^ok$"}}}) == []
    assert json_schema_patterns.pattern_problems(True) == []


def test_unevaluated_properties_beside_pattern_properties_is_refused():
    schema = {"allOf": [{"patternProperties": {"^x": {}}}], "unevaluatedProperties": False}
    assert json_schema_patterns.pattern_problems(schema) == [json_schema_patterns.UNEVALUATED_WITH_PATTERNS]
    assert json_schema_patterns.pattern_problems({"unevaluatedProperties": False}) == []


def test_a_refused_pattern_saved_earlier_raises_when_applied():
    with pytest.raises(regex.UnsupportedPattern):
        errors({"pattern": r"(a)\1"}, "aa")


def test_every_pattern_of_our_own_schemas_runs_on_re2():
    """Definitions, node configs and the standard meta-schemas are matched with RE2 too, once wired in."""
    for schema in (WORKFLOW_SCHEMA, NODE_SCHEMA):
        assert json_schema_patterns.pattern_problems(schema) == []
    for node_type in NODE_TYPES.values():
        assert json_schema_patterns.pattern_problems(node_type.config_schema) == [], node_type
    for validator_class in DRAFTS:
        assert json_schema_patterns.pattern_problems(validator_class.META_SCHEMA, validator_class) == []
        assert validators.validator_for(validator_class.META_SCHEMA) is validator_class
