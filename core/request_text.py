"""Text PostgreSQL cannot store, refused where it enters: a 400 naming the field, instead of a 500.

PostgreSQL keeps no NUL character in text or jsonb, and a lone UTF-16 surrogate (which JSON's
`\\ud800` escape produces) is not UTF-8 at all. This module holds the check; core.json_input applies
it to JSON bodies and messages, core.request_limits to the query string and the path, and
StorableJSONFormField to the JSON that forms (the admin's) take. Form text fields need nothing:
Django's CharField refuses a NUL itself, and form data is decoded with replacement characters.
"""

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_TEXT = "Text may not contain NUL characters or unpaired surrogates (such as \\u0000 or \\ud800)."
# Where a check names a value that is not under any field: the body itself, say.
NO_FIELD = "non_field_errors"


def escaped(key: str) -> str:
    """A key as it can go into an error's path: its unstorable characters written as escapes."""
    return UNSTORABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", key)


def unstorable_paths(value: Any, prefix: str = "") -> list[str]:
    """Dotted paths (dict keys, list indexes) of the strings and keys in `value` holding unstorable text."""
    paths: list[str] = []
    pending = [(value, prefix)]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                paths.append(path or NO_FIELD)
        elif isinstance(item, dict):
            for key, child in item.items():
                key = str(key)
                child_path = f"{path}.{escaped(key)}" if path else escaped(key)
                if UNSTORABLE.search(key):
                    paths.append(child_path)
                else:
                    pending.append((child, child_path))
        elif isinstance(item, list):
            pending += [(child, f"{path}.{index}" if path else str(index)) for index, child in enumerate(item)]
    return sorted(paths)


class StorableJSONFormField(forms.JSONField):
    """forms.JSONField refusing what the database cannot store, as forms.CharField refuses a NUL.

    CharField's own check looks at the parsed value's str(), where a NUL inside a string shows as
    the four characters `\\x00`, so it never sees one that came as `\\u0000` in the JSON text.
    """

    def to_python(self, value):
        value = super().to_python(value)
        paths = [path.replace(NO_FIELD, "(the value)") for path in unstorable_paths(value)]
        if paths:
            raise ValidationError(f"{UNSTORABLE_TEXT} At: {', '.join(paths)}.", code="unstorable")
        return value
