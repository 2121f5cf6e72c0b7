"""Which IP addresses are public: IANA's special-purpose address registries as data, and the rule that reads them.

The egress guard connects only to public addresses. It does not ask `ipaddress.is_global`: Python's
own tables lag the registries (3.11.7 calls 192.0.0.8 and 192.0.0.192 global) and judge an IPv6 form
that carries an IPv4 address as IPv6. The rule, `non_public_range`, reads the tables below:

- IPv4: public unless an entry covering it is not globally reachable ("False", or "N/A"/empty for a
  terminated or transition entry). Every covering entry counts, not only the most specific: the
  anycast services that the registry marks reachable inside 192.0.0.0/24 and 2001::/23 (PCP, TURN,
  AMT, AS112-v6, ...) answer at their nearest instance, which may be inside our own network.
- IPv6: the same, and only inside 2000::/3, the one block the IPv6 Address Space registry sets aside
  for global unicast; everything else (site-local fec0::/10, multicast, unassigned space) is refused.
- An IPv6 form that carries IPv4 addresses (`EMBEDDED_IPV4`: IPv4-mapped, IPv4-translated, NAT64
  64:ff9b::/96, 6to4, Teredo) is refused when any of them is not public: a socket, translator or
  relay ends up reaching them. The first four are then judged by those addresses alone; a Teredo
  address stays refused, as part of 2001::/23. Local-use NAT64 (64:ff9b:1::/48) is not unwrapped:
  where its IPv4 sits depends on the operator's prefix length (RFC 6052 section 2.2), and the
  registry marks all of it not globally reachable, so all of it is refused.

Registries followed, as IANA listed them in 2025: the IPv4 Special-Purpose Address Registry (created
2009-08-19; newest row 192.0.0.10/32, allocated 2017-02) and the IPv6 Special-Purpose Address
Registry (newest row 100:0:0:1::/64, allocated 2025-04), plus the IPv4 Multicast and IPv6 Address
Space registries for the blocks outside them. A new registry row means a new line here.
"""

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AddressRange:
    network: IPNetwork
    name: str
    rfc: str
    # The registry's "Globally Reachable" column; None where it says N/A or nothing (terminated rows).
    globally_reachable: bool | None

    def __str__(self) -> str:
        return f"{self.name}, {self.network}, {self.rfc}"


def _row(network: str, name: str, rfc: str, globally_reachable: bool | None) -> AddressRange:
    return AddressRange(ipaddress.ip_network(network), name, rfc, globally_reachable)


IPV4_SPECIAL_PURPOSE = (
    _row("0.0.0.0/8", '"This network"', "RFC 791", False),
    _row("0.0.0.0/32", '"This host on this network"', "RFC 1122", False),
    _row("10.0.0.0/8", "Private-Use", "RFC 1918", False),
    _row("100.64.0.0/10", "Shared Address Space", "RFC 6598", False),
    _row("127.0.0.0/8", "Loopback", "RFC 1122", False),
    _row("169.254.0.0/16", "Link Local", "RFC 3927", False),
    _row("172.16.0.0/12", "Private-Use", "RFC 1918", False),
    _row("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890", False),
    _row("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335", False),
    _row("192.0.0.8/32", "IPv4 dummy address", "RFC 7600", False),
    _row("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723", True),
    _row("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    _row("192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880", False),
    _row("192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880", False),
    _row("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737", False),
    _row("192.31.196.0/24", "AS112-v4", "RFC 7535", True),
    _row("192.52.193.0/24", "AMT", "RFC 7450", True),
    _row("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526", None),
    _row("192.88.99.2/32", "6a44-relay anycast address", "RFC 6751", False),
    _row("192.168.0.0/16", "Private-Use", "RFC 1918", False),
    _row("192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534", True),
    _row("198.18.0.0/15", "Benchmarking", "RFC 2544", False),
    _row("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737", False),
    _row("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737", False),
    _row("240.0.0.0/4", "Reserved", "RFC 1112", False),
    _row("255.255.255.255/32", "Limited Broadcast", "RFC 8190", False),
)
# From the IPv4 Multicast Address Space registry: no unicast host answers there.
IPV4_OTHER = (_row("224.0.0.0/4", "Multicast", "RFC 5771", False),)

IPV6_SPECIAL_PURPOSE = (
    _row("::1/128", "Loopback Address", "RFC 4291", False),
    _row("::/128", "Unspecified Address", "RFC 4291", False),
    _row("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291", False),
    _row("64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052", True),
    _row("64:ff9b:1::/48", "IPv4-IPv6 Translat.", "RFC 8215", False),
    _row("100::/64", "Discard-Only Address Block", "RFC 6666", False),
    _row("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780", False),
    _row("2001::/23", "IETF Protocol Assignments", "RFC 2928", False),
    _row("2001::/32", "TEREDO", "RFC 4380", None),
    _row("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723", True),
    _row("2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    _row("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665", True),
    _row("2001:2::/48", "Benchmarking", "RFC 5180", False),
    _row("2001:3::/32", "AMT", "RFC 7450", True),
    _row("2001:4:112::/48", "AS112-v6", "RFC 7535", True),
    _row("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", None),
    _row("2001:20::/28", "ORCHIDv2", "RFC 7343", True),
    _row("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", True),
    _row("2001:db8::/32", "Documentation", "RFC 3849", False),
    _row("2002::/16", "6to4", "RFC 3056", None),
    _row("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", True),
    _row("3fff::/20", "Documentation", "RFC 9637", False),
    _row("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602", False),
    _row("fc00::/7", "Unique-Local", "RFC 4193", False),
    _row("fe80::/10", "Link-Local Unicast", "RFC 4291", False),
)
# From the IPv6 Address Space registry: only 2000::/3 is global unicast. The other two rows are
# there to name what they are when an address is refused; anything outside 2000::/3 is refused anyway.
IPV6_GLOBAL_UNICAST = _row("2000::/3", "Global Unicast", "RFC 4291", True)
IPV6_OTHER = (
    _row("fec0::/10", "Site-Local (deprecated)", "RFC 3879", False),
    _row("ff00::/8", "Multicast", "RFC 4291", False),
)
IPV6_OUTSIDE_GLOBAL_UNICAST = "outside the IPv6 global unicast space (2000::/3, RFC 4291)"

_LOW_32 = 0xFFFFFFFF


def _teredo(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    # 2001:0:<server>:<flags>:<port>:<client>; the client address is stored with every bit flipped.
    value = int(ip)
    return ipaddress.IPv4Address((value >> 64) & _LOW_32), ipaddress.IPv4Address(~value & _LOW_32)


@dataclass(frozen=True)
class Embedding:
    network: ipaddress.IPv6Network
    name: str
    rfc: str
    ipv4: Callable[[ipaddress.IPv6Address], tuple[ipaddress.IPv4Address, ...]]
    # True when the address is only another spelling of its IPv4 one, which then decides alone.
    stands_for_ipv4: bool = True


EMBEDDED_IPV4 = (
    Embedding(
        ipaddress.IPv6Network("::ffff:0:0/96"),
        "IPv4-mapped",
        "RFC 4291",
        lambda ip: (ipaddress.IPv4Address(int(ip) & _LOW_32),),
    ),
    Embedding(
        ipaddress.IPv6Network("::ffff:0:0:0/96"),
        "IPv4-translated",
        "RFC 2765",
        lambda ip: (ipaddress.IPv4Address(int(ip) & _LOW_32),),
    ),
    Embedding(
        ipaddress.IPv6Network("64:ff9b::/96"),
        "NAT64 well-known prefix",
        "RFC 6052",
        lambda ip: (ipaddress.IPv4Address(int(ip) & _LOW_32),),
    ),
    Embedding(
        ipaddress.IPv6Network("2002::/16"),
        "6to4",
        "RFC 3056",
        lambda ip: (ipaddress.IPv4Address((int(ip) >> 80) & _LOW_32),),
    ),
    Embedding(ipaddress.IPv6Network("2001::/32"), "Teredo", "RFC 4380", _teredo, stands_for_ipv4=False),
)

_NOT_REACHABLE_V4 = tuple(row for row in IPV4_SPECIAL_PURPOSE + IPV4_OTHER if row.globally_reachable is not True)
_NOT_REACHABLE_V6 = tuple(row for row in IPV6_SPECIAL_PURPOSE + IPV6_OTHER if row.globally_reachable is not True)


def _narrowest(ip: IPAddress, rows: tuple[AddressRange, ...]) -> str | None:
    covering = [row for row in rows if ip in row.network]
    return str(max(covering, key=lambda row: row.network.prefixlen)) if covering else None


def non_public_range(ip: IPAddress) -> str | None:
    """Why `ip` is not a public address (the narrowest range that says so), or None when it is public."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _narrowest(ip, _NOT_REACHABLE_V4)
    for embedding in EMBEDDED_IPV4:
        if ip in embedding.network:
            for inner in embedding.ipv4(ip):
                if reason := non_public_range(inner):
                    return f"{embedding.name} ({embedding.rfc}) form of {inner}: {reason}"
            if embedding.stands_for_ipv4:
                return None
    if reason := _narrowest(ip, _NOT_REACHABLE_V6):
        return reason
    if ip not in IPV6_GLOBAL_UNICAST.network:
        return IPV6_OUTSIDE_GLOBAL_UNICAST
    return None


def is_public(ip: IPAddress) -> bool:
    """True when `ip` reaches the public internet by the tables above (see the module docstring)."""
    return non_public_range(ip) is None
