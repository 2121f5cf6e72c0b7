"""The egress guard's address decision against IANA's special-purpose registries (workflows.engine.address_ranges).

The embedded-IPv4 forms are built here bit by bit from their RFCs, not with the module's own decoding,
so a wrong offset there is caught rather than repeated.
"""

import ipaddress

import pytest
from django.conf import settings as django_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.engine import address_ranges
from workflows.engine.address_ranges import IPV4_OTHER, IPV4_SPECIAL_PURPOSE, IPV6_OTHER, IPV6_SPECIAL_PURPOSE
from workflows.engine.egress.destinations import address_allowed

# The addresses the attack battery reached through the guard (issue 17, finding 3).
REPORTED = [
    "192.0.0.192",
    "192.0.0.8",
    "::ffff:0:7f00:1",
    "::ffff:0:a9fe:a9fe",
    "64:ff9b:1::a9fe:a9fe",
    "64:ff9b:1::7f00:1",
    "fec0::1",
]
NOT_REACHABLE_V4 = [row for row in IPV4_SPECIAL_PURPOSE + IPV4_OTHER if row.globally_reachable is not True]
NOT_REACHABLE_V6 = [row for row in IPV6_SPECIAL_PURPOSE + IPV6_OTHER if row.globally_reachable is not True]
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
EVERY_ROW = IPV4_SPECIAL_PURPOSE + IPV4_OTHER + IPV6_SPECIAL_PURPOSE + IPV6_OTHER


def v6(value: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(value)


# RFC 4291 2.5.5.2, RFC 2765 2.1, RFC 6052 2.2, RFC 3056 2, RFC 4380 4: where each form keeps its IPv4.
def mapped(ipv4, _rest: int = 0):
    return v6(0xFFFF << 32 | int(ipv4))


def translated(ipv4, _rest: int = 0):
    return v6(0xFFFF << 48 | int(ipv4))


def compatible(ipv4, _rest: int = 0):
    return v6(int(ipv4))


def nat64(ipv4, _rest: int = 0):
    return v6(0x64FF9B << 96 | int(ipv4))


def nat64_local_96(ipv4, rest: int = 0):
    return v6(0x64FF9B0001 << 80 | (rest & (1 << 48) - 1) << 32 | int(ipv4))


def nat64_local_48(ipv4, rest: int = 0):
    # A /48 NAT64 prefix: two octets of the IPv4 address in bits 48-63, the u octet, then the other two.
    high, low = int(ipv4) >> 16, int(ipv4) & 0xFFFF
    return v6(0x64FF9B0001 << 80 | high << 64 | low << 40 | (rest & 0xFFFFFFFFFF))


def sixtofour(ipv4, rest: int = 0):
    return v6(0x2002 << 112 | int(ipv4) << 80 | (rest & (1 << 80) - 1))


def teredo_server(ipv4, rest: int = 0):
    client = rest & 0xFFFFFFFF
    return v6(0x20010000 << 96 | int(ipv4) << 64 | (rest >> 32 & 0xFFFFFFFF) << 32 | (~client & 0xFFFFFFFF))


def teredo_client(ipv4, rest: int = 0):
    return v6(0x20010000 << 96 | (rest & (1 << 64) - 1) << 32 | (~int(ipv4) & 0xFFFFFFFF))


FORMS = [mapped, translated, compatible, nat64, nat64_local_96, nat64_local_48, sixtofour, teredo_server, teredo_client]
# Forms that are only another spelling of the IPv4 address: judged by it alone.
STAND_INS = {
    ipaddress.IPv6Network("::ffff:0:0/96"): lambda ip: [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)],
    ipaddress.IPv6Network("::ffff:0:0:0/96"): lambda ip: [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)],
    ipaddress.IPv6Network("64:ff9b::/96"): lambda ip: [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)],
    ipaddress.IPv6Network("2002::/16"): lambda ip: [ipaddress.IPv4Address(int(ip) >> 80 & 0xFFFFFFFF)],
}


def public_by_the_table(ip) -> bool:
    """The registries read plainly: no covering row that is not globally reachable; IPv6 inside 2000::/3."""
    if ip.version == 4:
        return not any(ip in row.network for row in NOT_REACHABLE_V4)
    for network, inner in STAND_INS.items():
        if ip in network:
            return all(public_by_the_table(ipv4) for ipv4 in inner(ip))
    return ip in GLOBAL_UNICAST_V6 and not any(ip in row.network for row in NOT_REACHABLE_V6)


def python_calls_it_special(ip) -> bool:
    """Python's own flags, which err towards "global" (the bug), as a second, independent check."""
    flags = ("is_private", "is_reserved", "is_multicast", "is_loopback", "is_link_local", "is_unspecified")
    return any(getattr(ip, flag) for flag in flags) or getattr(ip, "is_site_local", False)


def allowed(ip) -> bool:
    """The guard's decision with no allow-list (the test settings' default)."""
    assert not django_settings.DWC_OUTBOUND_ALLOWLIST
    return address_allowed(ip)


not_reachable_ipv4 = st.sampled_from(NOT_REACHABLE_V4).flatmap(lambda row: st.ip_addresses(network=row.network))
any_address = st.one_of(
    st.ip_addresses(v=4),
    st.ip_addresses(v=6),
    st.sampled_from(EVERY_ROW).flatmap(lambda row: st.ip_addresses(network=row.network)),
    st.builds(lambda form, ipv4, rest: form(ipv4, rest), st.sampled_from(FORMS), st.ip_addresses(v=4), st.integers(0)),
)


@pytest.mark.parametrize("address", REPORTED)
def test_the_reported_special_purpose_addresses_are_refused(address):
    assert not allowed(address)
    assert address_ranges.non_public_range(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]
)
def test_public_addresses_in_any_spelling_are_allowed(address):
    assert allowed(address)


@settings(max_examples=1000, deadline=None)
@given(any_address)
def test_an_allowed_address_is_public_by_the_registries(ip):
    if allowed(ip):
        assert public_by_the_table(ip), address_ranges.non_public_range(ip)
        for network, inner in STAND_INS.items():
            if ip in network:
                assert not any(python_calls_it_special(ipv4) for ipv4 in inner(ip))
                break
        else:
            assert not python_calls_it_special(ip)


@settings(max_examples=1000, deadline=None)
@given(not_reachable_ipv4, st.sampled_from(FORMS), st.integers(0))
def test_every_ipv6_form_of_a_non_public_ipv4_address_is_refused(ipv4, form, rest):
    assert not allowed(ipv4)
    assert not allowed(form(ipv4, rest)), f"{form.__name__}: {form(ipv4, rest)}"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("192.0.0.8", "IPv4 dummy address"),
        ("fec0::1", "Site-Local"),
        ("::ffff:0:a9fe:a9fe", "IPv4-translated (RFC 2765) form of 169.254.169.254: Link Local"),
        ("2001:3::1", "IETF Protocol Assignments"),
        ("4000::1", "outside the IPv6 global unicast space"),
    ],
)
def test_a_refusal_names_the_range_that_caused_it(address, reason):
    assert reason in address_ranges.non_public_range(ipaddress.ip_address(address))


def test_the_allowlist_still_opens_networks_and_their_mapped_forms(settings):
    settings.DWC_OUTBOUND_ALLOWLIST = ["10.0.0.0/8", "fd00::/8"]
    assert address_allowed("10.1.2.3")
    assert address_allowed("::ffff:10.1.2.3")
    assert address_allowed("fd12::1")
    assert not address_allowed("192.168.1.1")
    assert not address_allowed("::ffff:0:a01:203")  # translated, not mapped: not listed


def test_every_row_is_in_its_own_family():
    assert all(row.network.version == 4 for row in IPV4_SPECIAL_PURPOSE + IPV4_OTHER)
    assert all(row.network.version == 6 for row in IPV6_SPECIAL_PURPOSE + IPV6_OTHER)
