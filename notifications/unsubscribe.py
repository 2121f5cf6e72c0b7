"""Signed one-click unsubscribe links for a user's emails (RFC 8058). The token names the user and the
channel kind it mutes; it is signed with the site's SECRET_KEY under a salt of its own and does not
expire: an old email's link must still work. Whoever holds it may mute that one kind for that user,
which is all a mail client's one-click POST needs and all the link allows."""

from typing import Any

from django.conf import settings
from django.core import signing

SALT = "notifications.unsubscribe"
PATH = "/notifications/unsubscribe/{token}"


class BadToken(Exception):
    """A token that was not made here (tampered, truncated, signed with another key)."""


def unsubscribe_token(*, user_id: Any, kind: str = "email") -> str:
    return signing.dumps({"user": str(user_id), "kind": kind}, salt=SALT, compress=False)


def unsubscribe_token_read(token: str) -> tuple[str, str]:
    """(user id, kind) that `token` names; BadToken if it is not one of ours."""
    try:
        value = signing.loads(token, salt=SALT)
    except signing.BadSignature as error:
        raise BadToken(str(error)) from error
    if not isinstance(value, dict) or not isinstance(value.get("user"), str) or not isinstance(value.get("kind"), str):
        raise BadToken("The token names no user and kind.")
    return value["user"], value["kind"]


def unsubscribe_url(*, user_id: Any, kind: str = "email") -> str:
    """The absolute link (DWC_PUBLIC_URL) that mutes `kind` for the user."""
    return settings.DWC_PUBLIC_URL + PATH.format(token=unsubscribe_token(user_id=user_id, kind=kind))
