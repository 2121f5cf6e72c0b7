"""JSON input is taken at its word: `0` is no boolean, `"5"` no integer, `5` no string.

DRF's fields read values the way HTML forms send them (all text): BooleanField takes 0, "yes" and
"on", IntegerField "5" and true, CharField 5, UUIDField an integer. The API takes JSON only, and its
OpenAPI schema promises JSON types; a value of another type is a 400 naming the field, as the
schema says, rather than something converted. Data that is text by nature keeps DRF's reading: a
QueryDict (query strings, forms), which the fields see when a serializer reads `request.query_params`.

install() wraps the fields' to_internal_value once, at start-up (core.apps).
"""

import datetime
import functools
import math
import numbers
import uuid

from django.http import QueryDict
from rest_framework import fields, serializers

NOT_A_BOOLEAN = "Must be true or false."
NOT_A_STRING = "Must be a string."
NOT_AN_INTEGER = "Must be an integer."
NOT_A_NUMBER = "Must be a number."


def _is_boolean(value) -> bool:
    return isinstance(value, bool)


def _is_string(value) -> bool:
    return isinstance(value, str)


def _is_integer(value) -> bool:
    # JSON Schema's integer: 5.0 is one.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_choice(field, value) -> bool:
    # A choice is matched by its text (DRF looks up str(value)): a JSON value must have the key's type.
    return any(type(value) is type(key) for key in field.choices)


def _is_string_or(*kinds: type):
    # Python callers may hand the value itself (a datetime, a UUID); JSON only has its text.
    return lambda field, value: isinstance(value, (str, *kinds))


CHECKS = [
    (fields.BooleanField, lambda field, value: _is_boolean(value), NOT_A_BOOLEAN),
    # CharField covers EmailField, RegexField, SlugField, URLField and IPAddressField.
    (fields.CharField, lambda field, value: _is_string(value), NOT_A_STRING),
    (fields.UUIDField, _is_string_or(uuid.UUID), NOT_A_STRING),
    (fields.DateTimeField, _is_string_or(datetime.datetime), NOT_A_STRING),
    (fields.DateField, _is_string_or(datetime.date), NOT_A_STRING),
    (fields.TimeField, _is_string_or(datetime.time), NOT_A_STRING),
    (fields.DurationField, _is_string_or(datetime.timedelta), NOT_A_STRING),
    (fields.IntegerField, lambda field, value: _is_integer(value), NOT_AN_INTEGER),
    (fields.FloatField, lambda field, value: _is_number(value), NOT_A_NUMBER),
    # MultipleChoiceField checks each item through ChoiceField's method.
    (fields.ChoiceField, _is_choice, '"{input}" is not a valid choice.'),
]


def _from_json(field: fields.Field) -> bool:
    data = getattr(field.root, "initial_data", None)
    return data is not None and not isinstance(data, QueryDict)


def _strict(to_internal_value, accepts, message):
    @functools.wraps(to_internal_value)
    def strict_to_internal_value(self, data):
        if _from_json(self) and not accepts(self, data):
            # DRF's own words where they need nothing filled in ("Not a valid string.").
            own = self.error_messages.get("invalid", "")
            raise serializers.ValidationError(own if own and "{" not in own else message.format(input=data))
        return to_internal_value(self, data)

    strict_to_internal_value.strict_json = True
    return strict_to_internal_value


def install() -> None:
    """Wrap the to_internal_value of each class in CHECKS (subclasses inherit it, or call it). Idempotent."""
    for field_class, accepts, message in CHECKS:
        method = field_class.__dict__["to_internal_value"]
        if not getattr(method, "strict_json", False):
            field_class.to_internal_value = _strict(method, accepts, message)
