"""Credential values: encrypted with Fernet keys from CREDENTIALS_KEY, read only where they are used.

CREDENTIALS_KEY holds one or more comma-separated keys: the first encrypts, every one decrypts, so a
key is rotated by putting the new one first and running `credentials_rotate`
(workflows.services.credentials, the `rotate_credentials_key` command), which re-encrypts what an older
key encrypted.

Values are write-only: besides the low-level `decrypt`, only `credential_value` and
`credential_kind_and_value` return one, for node types at send time. The API and the admin show
which keys a value has (`credential_fields`), never the value. Admins and owners of a workspace
manage its credentials (workflows.services.credentials); every member may see their names and kinds.
"""

import json
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.access import Role, ensure_role, workspaces_for_user
from accounts.models import User
from workflows.engine.errors import PermanentError
from workflows.models import Credential, Node, Workflow

Errors = dict[str, list[str]]

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
# Value keys holding a URL a provider client is pointed at.
URL_KEYS = {"base_url"}

# Where each node type names a credential in its config. Deleting a credential checks these.
REFERENCES = {"document": "credential", "http_request": "credential", "webhook": "secret"}

MISSING_CREDENTIAL = "No credential named {name!r} in this workspace."
WRONG_KIND = "Credential {name!r} is a {kind} credential; this needs one of: {kinds}."
UNREADABLE = "Credential {name!r} cannot be decrypted with the configured CREDENTIALS_KEY."
NO_SUCH_CREDENTIAL = "No such credential."
VALUE_NOT_AN_OBJECT = "The value must be a JSON object of strings."
VALUE_NOT_A_STRING = "Must be a string."
VALUE_KEY_MISSING = "A {kind} credential needs this key."
VALUE_KEY_UNKNOWN = "Not a key of a {kind} credential (its keys: {keys})."
URL_INVALID = "Must be an http:// or https:// URL with a host."
URL_WITH_USERINFO = "Must not carry a user name or password; put secrets in api_key."


def _keys() -> list[str]:
    return [key.strip() for key in settings.CREDENTIALS_KEY.split(",") if key.strip()]


def key_ring() -> MultiFernet:
    """Every key of CREDENTIALS_KEY: the first encrypts, each one decrypts."""
    return MultiFernet([Fernet(key) for key in _keys()])


def primary_key() -> Fernet:
    """The first key of CREDENTIALS_KEY, the one that encrypts."""
    return Fernet(_keys()[0])


def encrypt(value: dict) -> bytes:
    return key_ring().encrypt(json.dumps(value).encode())


def decrypt(token: bytes) -> dict:
    return json.loads(key_ring().decrypt(bytes(token)))


def _url_error(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return URL_INVALID
    if parts.scheme not in ("http", "https") or not parts.hostname or any(char.isspace() for char in url):
        return URL_INVALID
    if parts.username is not None or parts.password is not None:
        return URL_WITH_USERINFO
    return None


def value_field_errors(kind: str, value: object) -> Errors:
    """What is wrong with a value for `kind`, keyed by path (`value`, `value.<key>`); {} when it is valid.

    Messages name keys, never the strings a value holds: they end up in responses and logs.
    """
    if not isinstance(value, dict):
        return {"value": [VALUE_NOT_AN_OBJECT]}
    required, optional = VALUE_KEYS[kind], OPTIONAL_KEYS.get(kind, set())
    errors: Errors = {}
    for key in sorted(required - set(value)):
        errors[f"value.{key}"] = [VALUE_KEY_MISSING.format(kind=kind)]
    for key in sorted(set(value) - required - optional):
        errors[f"value.{key}"] = [VALUE_KEY_UNKNOWN.format(kind=kind, keys=", ".join(sorted(required | optional)))]
    for key in sorted(set(value) & (required | optional)):
        if not isinstance(value[key], str):
            errors[f"value.{key}"] = [VALUE_NOT_A_STRING]
        elif key in URL_KEYS and (problem := _url_error(value[key])):
            errors[f"value.{key}"] = [problem]
    return errors


def value_errors(kind: str, value: object) -> list[str]:
    """The same checks as `value_field_errors`, as sentences for a form with one field for the value."""
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        return [VALUE_NOT_AN_OBJECT]
    required, optional = VALUE_KEYS[kind], OPTIONAL_KEYS.get(kind, set())
    problems = []
    if missing := required - set(value):
        problems.append(f"Missing: {', '.join(sorted(missing))}.")
    if unknown := set(value) - required - optional:
        problems.append(f"Unknown: {', '.join(sorted(unknown))}.")
    for key in sorted(set(value) & URL_KEYS & optional):
        if problem := _url_error(value[key]):
            problems.append(f"{key}: {problem}")
    return problems


def credentials_for_user(user: User) -> QuerySet[Credential]:
    """Credentials of every workspace `user` is a member of, whatever the role (values stay encrypted)."""
    return Credential.objects.filter(workspace__in=workspaces_for_user(user)).select_related("created_by")


def credential_get(user: User, credential_id: Any) -> Credential:
    """The credential if `user` is a member of its workspace; Http404 hides the rest."""
    try:
        credential = Credential.objects.select_related("workspace", "created_by").get(pk=credential_id)
    except (ValueError, ValidationError, Credential.DoesNotExist) as error:
        raise Http404(NO_SUCH_CREDENTIAL) from error
    ensure_role(user, credential.workspace, Role.VIEWER, not_found=NO_SUCH_CREDENTIAL)
    return credential


def credential_fields(credential: Credential) -> list[str] | None:
    """The names of the keys its value sets (never the value); None when no configured key decrypts it."""
    try:
        return sorted(decrypt(credential.encrypted_value))
    except InvalidToken:
        return None


def credential_references(credential: Credential) -> QuerySet[Workflow]:
    """Workflows of its workspace, not deleted, with a node whose config names this credential."""
    named = Q()
    for node_type, key in REFERENCES.items():
        named |= Q(type=node_type, **{f"config__{key}": credential.name})
    nodes = Node.objects.filter(named, workflow__workspace_id=credential.workspace_id)
    return Workflow.objects.filter(pk__in=nodes.values("workflow_id"), deleted_at__isnull=True).order_by("name")


def credential_kind_and_value(*, workspace_id, name: str, kinds: tuple[str, ...]) -> tuple[str, dict]:
    """The kind and decrypted value for a node at run time; PermanentError when missing or of another kind."""
    credential = Credential.objects.filter(workspace_id=workspace_id, name=name).first()
    if credential is None:
        raise PermanentError(MISSING_CREDENTIAL.format(name=name))
    if credential.kind not in kinds:
        raise PermanentError(WRONG_KIND.format(name=name, kind=credential.kind, kinds=", ".join(kinds)))
    try:
        return credential.kind, decrypt(credential.encrypted_value)
    except InvalidToken as error:
        raise PermanentError(UNREADABLE.format(name=name)) from error


def credential_value(*, workspace_id, name: str, kinds: tuple[str, ...]) -> dict:
    """The decrypted value for a node at run time; PermanentError when missing or of another kind."""
    return credential_kind_and_value(workspace_id=workspace_id, name=name, kinds=kinds)[1]
