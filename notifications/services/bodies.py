"""What every write of the notifications API checks first: the body is an object, names only fields it
may set, and a create names the required ones. The services check each field's value themselves."""

from typing import Any

from django.core.exceptions import ValidationError

Errors = dict[str, list[str]]

BODY_NOT_AN_OBJECT = "The body must be a JSON object."
UNKNOWN_FIELD = "Unknown field."
REQUIRED = "This field is required."
NOT_A_BOOLEAN = "Must be true or false."


def body_fields(
    data: Any, *, writable: tuple[str, ...], ignored: tuple[str, ...], required: tuple[str, ...] = ()
) -> tuple[dict, Errors]:
    """The writable fields `data` sets, and errors for unknown or missing ones. `ignored` are read-only
    fields a client may send back from a GET. Raises ValidationError when `data` is not an object."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": [BODY_NOT_AN_OBJECT]})
    errors: Errors = {name: [UNKNOWN_FIELD] for name in sorted(set(data) - {*writable, *ignored})}
    fields = {name: data[name] for name in writable if name in data}
    errors.update({name: [REQUIRED] for name in required if name not in fields})
    return fields, errors
