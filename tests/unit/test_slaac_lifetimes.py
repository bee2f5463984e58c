# SPDX-License-Identifier: MIT
"""Lifetimes of what router advertisements configure: autoconfigured addresses (RFC 4862
5.5.3, 5.5.4: preferred, then deprecated, then removed; the two-hour rule), the default
router and the on-link prefixes (RFC 4861 6.3.4), DNS servers (RFC 8106 5.1); and a bad
prefix option skipped without losing the rest of the advertisement (RFC 4861 4.6.2)."""

from __future__ import annotations

import struct

import pytest

from tests.unit.stackframes import inject, packed
from tests.unit.test_ndp import (
    DAD_TIME,
    PREFIX,
    ROUTER_LL,
    ROUTER_MAC,
    ndp_frame,
    prefix,
    slaac_address,
)
from ustack.network.ipv6 import IPv6Endpoint, IPv6Protocol
from ustack.network.ndp import NDP, TWO_HOURS
from ustack.testing.pair import StackPair
from ustack.wire import icmp6
from ustack.wire import ndp as ndp_wire
from ustack.wire.proto import EtherType

DNS = packed("2001:db8::53")
OFF_LINK = packed("2001:db8:99::1")


def ra(*, lifetime: int = 1800, prefixes: tuple[ndp_wire.PrefixInfo, ...] = (),
       dns_lifetime: int | None = None, extra: bytes = b"") -> bytes:
    options = ndp_wire.link_addr_option(ndp_wire.OPT_SOURCE_LINK_ADDR,
                                        bytes.fromhex(ROUTER_MAC.replace(":", "")))
    for info in prefixes:
        options += ndp_wire.prefix_option(info)
    if dns_lifetime is not None:
        options += ndp_wire.rdnss_option((DNS,), dns_lifetime)
    rest = ndp_wire.router_advertisement_rest(64, False, False, lifetime)
    return ndp_frame(ROUTER_MAC, "33:33:00:00:00:01", ROUTER_LL, "ff02::1",
                     icmp6.ROUTER_ADVERTISEMENT, rest, struct.pack("!II", 0, 0) + options + extra)


def ndp_of(pair: StackPair) -> NDP:
    proto = pair.b.network_protocols[EtherType.IPV6]
    assert isinstance(proto, IPv6Protocol)
    return proto.ndp


def advertise(pair: StackPair, frame: bytes, run: float = 0.01) -> None:
    inject(pair.link_b, frame)
    pair.run(run)


def test_rfc4862_5_5_4_preferred_then_deprecated_then_removed(pair: StackPair) -> None:
    advertise(pair, ra(prefixes=(prefix(valid=300, preferred=100),)), DAD_TIME)
    addr = slaac_address(PREFIX, pair.link_b.link_address)
    target = packed("2001:db8:1::99")
    assert pair.nic_b.has_address(addr)
    assert pair.b.find_route(target).local_addr == addr
    pair.run(100.0)
    # deprecated: still ours, but not a source for new communication (RFC 6724 rule 3)
    assert pair.nic_b.has_address(addr) and addr in ndp_of(pair).deprecated
    assert pair.b.find_route(target).local_addr != addr
    assert pair.b.stats["ndp.address_deprecated"] == 1
    pair.run(200.0)
    assert not pair.nic_b.has_address(addr)
    assert pair.b.local_nic(addr) is None
    assert pair.b.stats["ndp.address_expired"] == 1


def test_rfc4862_5_5_3_e_a_new_preferred_lifetime_undeprecates(pair: StackPair) -> None:
    advertise(pair, ra(prefixes=(prefix(valid=300, preferred=0),)), DAD_TIME)
    addr = slaac_address(PREFIX, pair.link_b.link_address)
    assert addr in ndp_of(pair).deprecated
    assert pair.b.find_route(packed("2001:db8:1::99")).local_addr != addr
    advertise(pair, ra(prefixes=(prefix(valid=300, preferred=200),)))
    assert addr not in ndp_of(pair).deprecated
    assert pair.b.find_route(packed("2001:db8:1::99")).local_addr == addr


def test_rfc4862_5_5_3_e_the_two_hours_rule(pair: StackPair) -> None:
    advertise(pair, ra(prefixes=(prefix(valid=86400, preferred=3600),)), DAD_TIME)
    addr = slaac_address(PREFIX, pair.link_b.link_address)
    valid = ndp_of(pair).valid
    # 1. a short valid lifetime does not cut a long-lived address below two hours
    advertise(pair, ra(prefixes=(prefix(valid=60, preferred=30),)))
    assert valid.remaining(addr) == pytest.approx(TWO_HOURS, abs=0.1)
    # 2. more than two hours is taken as it is
    advertise(pair, ra(prefixes=(prefix(valid=3 * 3600, preferred=30),)))
    assert valid.remaining(addr) == pytest.approx(3 * 3600, abs=0.1)
    # 3. with two hours or less left, a shorter lifetime is ignored ...
    pair.run(3 * 3600 - 1000.0)
    advertise(pair, ra(prefixes=(prefix(valid=60, preferred=30),)))
    assert valid.remaining(addr) == pytest.approx(1000.0, abs=0.1)
    assert pair.b.stats["ndp.valid_lifetime_kept"] == 1
    # ... and a longer one (than what is left) accepted
    advertise(pair, ra(prefixes=(prefix(valid=5000, preferred=30),)))
    assert valid.remaining(addr) == pytest.approx(5000, abs=0.1)
    pair.run(5001.0)
    assert not pair.nic_b.has_address(addr)


def test_rfc4861_6_3_4_default_router_expires_with_its_lifetime(pair: StackPair) -> None:
    advertise(pair, ra(lifetime=30))
    assert pair.b.find_route(OFF_LINK).next_hop == packed(ROUTER_LL)
    pair.run(20.0)
    advertise(pair, ra(lifetime=30))  # refreshed: 30 s from now
    pair.run(25.0)
    assert pair.b.find_route(OFF_LINK).next_hop == packed(ROUTER_LL)
    pair.run(6.0)
    assert pair.b.routes.lookup(OFF_LINK) is None
    assert pair.b.stats["ndp.router_expired"] == 1


def test_rfc4861_6_3_4_on_link_prefix_expires(pair: StackPair) -> None:
    advertise(pair, ra(lifetime=0, prefixes=(prefix("2001:db8:7::", autonomous=False,
                                                     valid=50, preferred=50),)))
    target = packed("2001:db8:7::5")
    assert pair.b.find_route(target).next_hop == target
    pair.run(51.0)
    assert pair.b.routes.lookup(target) is None
    assert pair.b.stats["ndp.prefix_expired"] == 1


def test_rfc8106_5_1_dns_server_lifetime(pair: StackPair) -> None:
    advertise(pair, ra(dns_lifetime=100))
    assert pair.b.dns_servers == [DNS]
    pair.run(101.0)
    assert pair.b.dns_servers == []
    advertise(pair, ra(dns_lifetime=600))
    assert pair.b.dns_servers == [DNS]
    advertise(pair, ra(dns_lifetime=0))  # zero: no longer to be used
    assert pair.b.dns_servers == []


def test_rfc4861_4_6_2_prefix_option_of_the_wrong_length_is_skipped(pair: StackPair) -> None:
    bad = bytes((ndp_wire.OPT_PREFIX_INFO, 3)) + bytes(22)  # Length 3, not 4
    advertise(pair, ra(prefixes=(prefix(),), extra=bad + ndp_wire.mtu_option(1400)), DAD_TIME)
    assert pair.b.stats["ndp.rx_ra"] == 1
    assert pair.b.stats["ndp.option_ignored"] == 1
    assert pair.nic_b.has_address(slaac_address(PREFIX, pair.link_b.link_address))
    ep = pair.nic_b.endpoints[EtherType.IPV6]
    assert isinstance(ep, IPv6Endpoint) and ep.ra_mtu == 1400  # the options after it


def test_rfc4861_4_6_option_of_length_zero_drops_the_advertisement(pair: StackPair) -> None:
    advertise(pair, ra(prefixes=(prefix(),), extra=bytes((ndp_wire.OPT_MTU, 0)) + bytes(6)))
    assert pair.b.stats["ndp.rx_ra"] == 0
    assert pair.b.stats["ndp.drop.bad_option"] == 1



def test_an_expired_address_leaves_its_still_valid_on_link_prefix(pair: StackPair) -> None:
    advertise(pair, ra(prefixes=(prefix(valid=86400, preferred=3600),)), DAD_TIME)
    addr = slaac_address(PREFIX, pair.link_b.link_address)
    ndp_of(pair).valid.set(addr, 10)  # as if its lifetime had run down
    pair.run(11.0)
    assert not pair.nic_b.has_address(addr)
    target = packed("2001:db8:1::99")
    assert pair.b.find_route(target).next_hop == target  # still on-link (RFC 4861 6.3.4)
