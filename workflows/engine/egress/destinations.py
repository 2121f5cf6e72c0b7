"""Where a request may go: a URL of the allowed form, whose host resolves only to public addresses or to
ones DWC_OUTBOUND_ALLOWLIST opens."""

import ipaddress
import logging
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx2
from django.conf import settings

from workflows.engine import address_ranges
from workflows.engine.egress.errors import EgressConnectionError, EgressForbidden

logger = logging.getLogger(__name__)

IPAddress = address_ranges.IPAddress
IPNetwork = address_ranges.IPNetwork

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

SCHEME_FORBIDDEN = "scheme {scheme!r} is not allowed; use http or https"
USERINFO_FORBIDDEN = "credentials in the URL are not allowed; send them in a header"
URL_INVALID = "not a valid URL: {reason}"
ADDRESS_FORBIDDEN = "{host} resolves to {address}, which is not a public address ({reason}; see DWC_OUTBOUND_ALLOWLIST)"
DNS_FAILED = "could not resolve {host}"


@dataclass(frozen=True)
class Target:
    """A checked-for-form URL: http(s), no credentials, an ASCII host and a port."""

    parts: SplitResult
    scheme: str
    host: str  # IDNA-encoded, lower-case, no brackets
    port: int

    @classmethod
    def parse(cls, url: str, *, params: Mapping | None = None) -> "Target":
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise EgressForbidden(URL_INVALID.format(reason=error)) from error
        if parts.scheme not in ALLOWED_SCHEMES:
            raise EgressForbidden(SCHEME_FORBIDDEN.format(scheme=parts.scheme))
        if "@" in parts.netloc:
            raise EgressForbidden(USERINFO_FORBIDDEN)
        if not parts.hostname:
            raise EgressForbidden(URL_INVALID.format(reason="no host"))
        try:
            host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError as error:
            raise EgressForbidden(URL_INVALID.format(reason="the host is not a valid name")) from error
        if params:
            parts = parts._replace(query=str(httpx2.QueryParams(parts.query).merge(params)))
        return cls(
            parts=parts, scheme=parts.scheme, host=host, port=DEFAULT_PORTS[parts.scheme] if port is None else port
        )

    @property
    def url(self) -> str:
        return urlunsplit(self.parts)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def may_inherit_secrets_of(self, previous: "Target") -> bool:
        """Whether a redirect from `previous` to here may carry its secret headers: same origin, or
        the same host moving from http to https on the default ports (as httpx and requests allow)."""
        if (self.scheme, self.host, self.port) == (previous.scheme, previous.host, previous.port):
            return True
        upgrade = (previous.scheme, self.scheme) == ("http", "https")
        default_ports = previous.port == DEFAULT_PORTS["http"] and self.port == DEFAULT_PORTS["https"]
        return upgrade and default_ports and self.host == previous.host

    def url_for(self, address: str) -> str:
        """This URL with the host replaced by the checked address; the fragment stays home."""
        literal = f"[{address}]" if ":" in address else address
        return urlunsplit((self.scheme, f"{literal}:{self.port}", self.parts.path, self.parts.query, ""))


def checked_addresses(host: str, port: int) -> list[str]:
    """The host's addresses, resolved once; EgressForbidden if any of them is not allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise EgressConnectionError(DNS_FAILED.format(host=host)) from error
    addresses = list(dict.fromkeys(info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)))
    if not addresses:
        raise EgressConnectionError(DNS_FAILED.format(host=host))
    names, networks = _allowlist()
    if host.rstrip(".") in names:
        return addresses
    for address in addresses:
        ip = ipaddress.ip_address(address)
        reason = address_ranges.non_public_range(ip)
        if reason and not _in_networks(ip, networks):
            logger.warning("outbound request refused", extra={"host": host, "address": address})
            raise EgressForbidden(
                ADDRESS_FORBIDDEN.format(host=host, address=address, reason=reason),
                details={"host": host, "address": address},
            )
    return addresses


def address_allowed(address: str | IPAddress) -> bool:
    """Whether the guard would connect to this address: a public one, or one DWC_OUTBOUND_ALLOWLIST opens."""
    ip = ipaddress.ip_address(address)
    _names, networks = _allowlist()
    return address_ranges.is_public(ip) or _in_networks(ip, networks)


def _in_networks(ip: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return any(ip in network or (mapped is not None and mapped in network) for network in networks)


def _allowlist() -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """DWC_OUTBOUND_ALLOWLIST, read per call so that settings overrides apply: host names and networks."""
    entries = settings.DWC_OUTBOUND_ALLOWLIST
    if isinstance(entries, str):
        entries = entries.split(",")
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return frozenset(names), tuple(networks)
