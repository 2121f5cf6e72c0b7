"""Credential values: encrypted with Fernet keys from CREDENTIALS_KEY, read only where they are used.

CREDENTIALS_KEY holds one or more comma-separated keys: the first encrypts, every one decrypts, so a
key is rotated by putting the new one first and re-saving credentials (MultiFernet.rotate).
"""

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from workflows.engine.errors import PermanentError
from workflows.models import Credential

# The keys each kind's value must have; values are strings.
VALUE_KEYS = {
    Credential.Kind.HTTP_BEARER: {"token"},
    Credential.Kind.HTTP_BASIC: {"username", "password"},
    Credential.Kind.HTTP_HEADER: {"name", "value"},
    Credential.Kind.HMAC_SECRET: {"secret"},
    Credential.Kind.SLACK_WEBHOOK: {"url"},
    Credential.Kind.OPENAI: {"api_key"},
    Credential.Kind.ANTHROPIC: {"api_key"},
    Credential.Kind.SMTP: {"host", "username", "password"},
}
OPTIONAL_KEYS = {Credential.Kind.OPENAI: {"base_url", "organization"}, Credential.Kind.ANTHROPIC: {"base_url"}}

MISSING_CREDENTIAL = "No credential named {name!r} in this workspace."
WRONG_KIND = "Credential {name!r} is a {kind} credential; this needs one of: {kinds}."
UNREADABLE = "Credential {name!r} cannot be decrypted with the configured CREDENTIALS_KEY."


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.strip()) for key in settings.CREDENTIALS_KEY.split(",") if key.strip()])


def encrypt(value: dict) -> bytes:
    return _fernet().encrypt(json.dumps(value).encode())


def decrypt(token: bytes) -> dict:
    return json.loads(_fernet().decrypt(bytes(token)))


def value_errors(kind: str, value: object) -> list[str]:
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        return ["The value must be a JSON object of strings."]
    required, optional = VALUE_KEYS[kind], OPTIONAL_KEYS.get(kind, set())
    problems = []
    if missing := required - set(value):
        problems.append(f"Missing: {', '.join(sorted(missing))}.")
    if unknown := set(value) - required - optional:
        problems.append(f"Unknown: {', '.join(sorted(unknown))}.")
    return problems


def credential_save(*, workspace_id, name: str, kind: str, value: dict, actor=None) -> Credential:
    """Create or replace a credential's value (a write-only operation: values are never read back)."""
    if kind not in VALUE_KEYS:
        raise ValidationError({"kind": [f"Must be one of: {', '.join(VALUE_KEYS)}."]})
    if problems := value_errors(kind, value):
        raise ValidationError({"value": problems})
    try:
        with transaction.atomic():
            credential, _ = Credential.objects.update_or_create(
                workspace_id=workspace_id,
                name=name,
                defaults={"kind": kind, "encrypted_value": encrypt(value), "created_by": actor},
            )
    except IntegrityError as error:
        raise ValidationError({"name": ["A credential with this name exists."]}) from error
    return credential


def credential_value(*, workspace_id, name: str, kinds: tuple[str, ...]) -> dict:
    """The decrypted value for a node at run time; PermanentError when missing or of another kind."""
    credential = Credential.objects.filter(workspace_id=workspace_id, name=name).first()
    if credential is None:
        raise PermanentError(MISSING_CREDENTIAL.format(name=name))
    if credential.kind not in kinds:
        raise PermanentError(WRONG_KIND.format(name=name, kind=credential.kind, kinds=", ".join(kinds)))
    try:
        return decrypt(credential.encrypted_value)
    except InvalidToken as error:
        raise PermanentError(UNREADABLE.format(name=name)) from error
