"""Reading the JSON files the commands take (workflow exports to import or run)."""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

CANNOT_READ = "Cannot read {path}: {reason}."
NOT_JSON = "{path} is not valid JSON: {reason}."


def json_file_read(path: Path) -> Any:
    """The file's JSON value; CommandError saying why when it cannot be read or is not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CommandError(CANNOT_READ.format(path=path, reason=error.strerror or error)) from error
    except UnicodeDecodeError as error:
        raise CommandError(CANNOT_READ.format(path=path, reason="not UTF-8 text")) from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(NOT_JSON.format(path=path, reason=error)) from error
