"""IP allow-lists: per workspace (all API access to it), per API key, per inbound webhook, and
DWC_ADMIN_ALLOWED_IPS for the admin site. An empty list allows every address.

The client address is the one the throttles count by (core.throttling.client_ip: REMOTE_ADDR, or
X-Forwarded-For as DWC_NUM_PROXIES says). An IPv4-mapped IPv6 address (`::ffff:203.0.113.7`) is
compared as the IPv4 address it carries; lists hold such networks as IPv4 (accounts.models).

The access rules (accounts.access) take a user, not a request: `client_context` puts the client of
the request (accounts.middleware.IpAllowListMiddleware) or of the websocket connection
(accounts.websocket_auth) in a context variable for them. Outside both (Celery tasks, commands, the
admin site, which has its own list) there is no address, and no workspace's list applies.

A refusal is a 403 problem `/problems/ip-not-allowed` whose `rule` says which list refused
(`workspace`, `api_key`, `webhook`, `admin`), never what the list holds, and an `access.ip_refused`
audit event. During a request the event is written once the response is made, outside any
transaction of the view that the refusal rolled back. Refusals cost the client nothing, while every
event takes the audit chain's lock: the first refusal of a rule, list and address in a minute is
recorded, the others are logged only.
"""

import ipaddress
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest
from django.urls import reverse

from accounts.models import ip_networks_clean
from audit.services import AnyRequest, audit_record
from core.throttling import client_ip, throttle_cache

WORKSPACE, API_KEY, WEBHOOK, ADMIN = "workspace", "api_key", "webhook", "admin"
REFUSED = {
    WORKSPACE: "Requests from your address are not allowed by this workspace's IP allow-list.",
    API_KEY: "Requests from your address are not allowed by this API key's IP allow-list.",
    WEBHOOK: "Requests from your address are not allowed by this webhook's IP allow-list.",
    ADMIN: "Requests from your address are not allowed by the admin site's IP allow-list (DWC_ADMIN_ALLOWED_IPS).",
}
ACTION = "access.ip_refused"
PROBLEM_CODE = "ip_not_allowed"
# One audit event per rule, list and address in this many seconds (see the module's docstring).
AUDIT_EVERY_SECONDS = 60
WOULD_LOCK_YOU_OUT = (
    "This list does not include your current address ({address}): saving it would lock you out of the "
    "workspace. Add your address or network, or make the change from an address in the list."
)

log = logging.getLogger("dwc.ip_allow_lists")


class IpNotAllowed(PermissionDenied):
    """403 `/problems/ip-not-allowed`: the client's address is outside the list that `rule` names."""

    code = PROBLEM_CODE

    def __init__(self, rule: str):
        super().__init__(REFUSED[rule])
        self.rule = rule
        # Members of the problem document besides type, title, status and detail (core.problems).
        self.problem_members = {"rule": rule}


# --- the check -----------------------------------------------------------------------------------


def parsed_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address as compared: IPv4-mapped IPv6 as IPv4, without a zone; None if it is not one."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0].strip())
    except ValueError:
        return None
    if parsed.version == 6 and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def allows(networks: Sequence[str], address: str) -> bool:
    """Whether the list admits the address: it is empty, or one of its networks holds the address.
    An address that is not one (a malformed X-Forwarded-For entry) is admitted by empty lists only."""
    if not networks:
        return True
    parsed = parsed_address(address)
    if parsed is None:
        return False
    for entry in networks:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue  # lists are validated when saved; a bad entry admits nobody
        if network.version == parsed.version and parsed in network:
            return True
    return False


# --- the client of the current request or websocket ----------------------------------------------


@dataclass
class _Client:
    address: str
    request: HttpRequest
    # Refusals to record once the response is made; None: record each at once (websockets).
    pending: list[dict] | None


_client: ContextVar[_Client | None] = ContextVar("ip_allow_list_client", default=None)


@contextmanager
def client_context(request: HttpRequest, *, record_after: bool) -> Iterator[None]:
    """Within it, accounts.access checks workspaces' lists against `request`'s client address.
    `record_after`: keep refusals until the block ends, then audit them (for a request, whose view may
    roll back the transaction it refused in)."""
    client = _Client(address=client_ip(request), request=request, pending=[] if record_after else None)
    token = _client.set(client)
    try:
        yield
    finally:
        _client.reset(token)
        for refusal in client.pending or []:
            _record(**refusal)


def current_address() -> str | None:
    """The client address of the request or websocket being handled; None outside one."""
    client = _client.get()
    return client.address if client is not None else None


def admitted_here(networks: Sequence[str]) -> bool:
    """Whether the list admits the current client; True outside a request or websocket."""
    address = current_address()
    return address is None or allows(networks, address)


# --- refusing ------------------------------------------------------------------------------------


def ensure_allowed(
    networks: Sequence[str],
    *,
    rule: str,
    address: str | None = None,
    actor: Any = None,
    workspace: Any = None,
    target: Any = None,
    target_type: str = "",
    request: AnyRequest | None = None,
) -> None:
    """Raise IpNotAllowed, and audit the refusal, if the list does not admit `address` (by default the
    current client's; without one, nothing is checked). `actor`, `workspace`, `target`, `target_type`
    and `request` are audit_record's, for the event (the request by default the current one's)."""
    client = _client.get()
    if address is None:
        if client is None:
            return
        address = client.address
    if allows(networks, address):
        return
    log.warning("IP allow-list refused a request", extra={"rule": rule, "address": address})
    refusal = {
        "rule": rule,
        "address": address,
        "actor": actor,
        "workspace": workspace,
        "target": target,
        "target_type": target_type,
        "request": request if request is not None or client is None else client.request,
    }
    if client is not None and client.pending is not None:
        client.pending.append(refusal)
    else:
        _record(**refusal)
    raise IpNotAllowed(rule)


def ensure_lock_out_avoided(networks: Sequence[str], *, field: str = "allowed_ips") -> None:
    """Refuse a new list for a workspace that would refuse the current client, who is changing it."""
    address = current_address()
    if address is not None and not allows(networks, address):
        raise ValidationError({field: [WOULD_LOCK_YOU_OUT.format(address=address)]})


def _record(
    *,
    rule: str,
    address: str,
    actor: Any,
    workspace: Any,
    target: Any,
    target_type: str,
    request: AnyRequest | None,
) -> None:
    address = address[:64]  # behind a trusted proxy, what it forwarded: an address, or any text
    subject = getattr(target, "pk", None) or getattr(workspace, "pk", workspace) or ""
    if not throttle_cache.add(f"ip-refused:{rule}:{subject}:{address}", 1, timeout=AUDIT_EVERY_SECONDS):
        return
    if actor is not None and not getattr(actor, "is_authenticated", True):
        actor = None
    audit_record(
        action=ACTION,
        actor=actor if actor is not None else "anonymous",
        workspace=workspace,
        target=target,
        target_type=target_type,
        changes={"rule": [None, rule], "address": [None, address]},
        request=request,
    )


# --- the admin site and the request context ------------------------------------------------------


class IpAllowListAdminForm(forms.ModelForm):
    """For the admin pages of models with an `allowed_ips` list: it is saved canonical, as the API saves
    it (the model's validator only checks it)."""

    def clean_allowed_ips(self) -> list[str]:
        return ip_networks_clean(self.cleaned_data.get("allowed_ips") or [])


@cache
def _admin_prefix() -> str:
    return reverse("admin:index")


def is_admin_site(request: HttpRequest) -> bool:
    return request.path_info.startswith(_admin_prefix())


def ensure_admin_site_allowed(request: HttpRequest) -> None:
    """DWC_ADMIN_ALLOWED_IPS, for a request to the admin site: IpNotAllowed, audited at once (no view
    ran, so no transaction can take the event with it)."""
    user = getattr(request, "user", None)
    ensure_allowed(
        settings.DWC_ADMIN_ALLOWED_IPS,
        rule=ADMIN,
        address=client_ip(request),
        actor=user if user is not None and user.is_authenticated else None,
        request=request,
    )
