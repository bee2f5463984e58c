# SPDX-License-Identifier: MIT
"""Duplicate address detection (RFC 4862 5.4): a new IPv6 address is tentative (not a
source, not answering solicitations) until DupAddrDetectTransmits probes from :: went
unanswered; a solicitation from :: or an advertisement for it makes it a duplicate."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import Ether

from tests.unit.stackframes import Packet, frames, inject, packed, record
from tests.unit.test_ndp import (
    DAD_TIME,
    PREFIX,
    neighbor_advertisement,
    neighbor_solicitation,
    prefix,
    router_advertisement,
    slaac_address,
)
from ustack.clock import VirtualClock
from ustack.link.channel import ChannelEndpoint
from ustack.network.dad import DuplicateAddressDetection
from ustack.network.ipv6 import IPv6Protocol
from ustack.stack import Stack, StackOptions
from ustack.testing.pair import StackPair, make_pair
from ustack.wire import ipv6 as ipv6_wire
from ustack.wire.proto import EtherType

NEW = "fd00::a"
NEW_GROUP = "ff02::1:ff00:a"


def dad_of(stack: Stack) -> DuplicateAddressDetection:
    proto = stack.network_protocols[EtherType.IPV6]
    assert isinstance(proto, IPv6Protocol)
    return proto.ndp.dad


def probes(pair: StackPair, target: str = NEW) -> list[Packet]:
    return [f for f in frames(pair.link_a, ICMPv6ND_NS)
            if f[ICMPv6ND_NS].tgt == target and f[IPv6].src == "::"]


def test_rfc4862_5_4_2_tentative_until_one_unanswered_probe(pair: StackPair) -> None:
    record(pair)
    pair.a.add_address("eth0", f"{NEW}/64")
    assert not pair.nic_a.has_address(packed(NEW))
    assert dad_of(pair.a).is_tentative(packed(NEW))
    pair.run(0.01)
    (probe,) = probes(pair)
    assert probe[IPv6].dst == NEW_GROUP and probe[IPv6].hlim == 255
    assert probe.dst == "33:33:ff:00:00:0a"
    assert not probe.haslayer(ICMPv6NDOptSrcLLAddr)  # 5.4.2 (RFC 4861 7.2.2): none from ::
    pair.run(0.98)
    assert not pair.nic_a.has_address(packed(NEW))  # RetransTimer not over yet
    pair.run(0.02)
    assert pair.nic_a.has_address(packed(NEW))
    assert len(probes(pair)) == 1  # DupAddrDetectTransmits = 1
    assert pair.a.stats["ndp.dad_succeeded"] == 1


def test_rfc4862_5_4_tentative_address_is_no_source_and_answers_nothing(
        pair: StackPair) -> None:
    pair.a.add_address("eth0", f"{NEW}/64")
    sock = pair.a.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with pytest.raises(OSError) as info:
        sock.bind((NEW, 0))
        sock.sendto(b"x", ("fd00::2", 9))
    assert info.value.errno == errno.EADDRNOTAVAIL
    record(pair)
    # b resolving the tentative address (a unicast source): no answer (5.4.3)
    inject(pair.link_a, neighbor_solicitation(pair, "fd00::2", NEW_GROUP, NEW,
                                              "02:00:00:00:00:99"))
    pair.run(0.01)
    assert frames(pair.link_a, ICMPv6ND_NA) == []
    assert pair.a.stats["ndp.ns_for_tentative"] == 1
    pair.run(DAD_TIME)
    assert pair.nic_a.has_address(packed(NEW))  # that was no conflict


def test_rfc4862_5_4_3_another_nodes_probe_makes_it_a_duplicate(
        pair: StackPair, caplog: pytest.LogCaptureFixture) -> None:
    pair.a.add_address("eth0", f"{NEW}/64")
    pair.run(0.5)
    with caplog.at_level(logging.WARNING, logger="ustack.dad"):
        inject(pair.link_a, neighbor_solicitation(pair, "::", NEW_GROUP, NEW, None))
        pair.run(DAD_TIME)
    assert not pair.nic_a.has_address(packed(NEW))
    assert pair.a.local_nic(packed(NEW)) is None
    assert dad_of(pair.a).duplicates == [(pair.nic_a.id, packed(NEW))]
    assert pair.a.stats["ndp.dad_duplicate"] == 1
    assert "fd00::a is a duplicate" in caplog.text


def test_rfc4862_5_4_4_an_advertisement_makes_it_a_duplicate(pair: StackPair) -> None:
    pair.a.add_address("eth0", f"{NEW}/64")
    pair.run(0.5)
    inject(pair.link_a, neighbor_advertisement(NEW, "02:00:00:00:00:77", solicited=False,
                                               override=True, dst="ff02::1"))
    pair.run(DAD_TIME)
    assert not pair.nic_a.has_address(packed(NEW))
    assert pair.a.stats["ndp.dad_duplicate"] == 1
    assert pair.a.stats["ndp.address_conflict"] == 0


def test_an_address_the_other_stack_holds_is_found_duplicate(pair: StackPair) -> None:
    """End to end: b owns fd00::2 and answers a's probe for it (RFC 4861 7.2.4)."""
    pair.a.add_address("eth0", "fd00::2/64")
    pair.run(DAD_TIME)
    assert not pair.nic_a.has_address(packed("fd00::2"))
    assert pair.a.stats["ndp.dad_duplicate"] == 1
    assert pair.b.stats["ndp.tx_na"] >= 1


def test_dad_off_per_address_and_per_stack(pair: StackPair) -> None:
    pair.a.add_address("eth0", f"{NEW}/64", dad=False)  # ip addr add ... nodad
    assert pair.nic_a.has_address(packed(NEW))
    off = make_pair(options=StackOptions(dad_transmits=0))
    off.a.add_address("eth0", "fd00::b/64")
    assert off.nic_a.has_address(packed("fd00::b"))
    assert off.a.stats["ndp.dad_started"] == 0


def test_rfc4862_5_4_autoconfigured_addresses_go_through_dad(pair: StackPair) -> None:
    record(pair)
    inject(pair.link_b, router_advertisement(prefixes=(prefix(),)))
    pair.run(0.01)
    addr = slaac_address(PREFIX, pair.link_b.link_address)
    text = str(ipaddress.ip_address(addr))
    assert not pair.nic_b.has_address(addr)
    assert [f[ICMPv6ND_NS].tgt for f in frames(pair.link_b, ICMPv6ND_NS)
            if f[IPv6].src == "::"] == [text]
    pair.run(DAD_TIME)
    assert pair.nic_b.has_address(addr)


def test_link_local_address_goes_through_dad_before_router_solicitation() -> None:
    """RFC 4862 5.3/5.4: the link-local address is verified first; router solicitations
    (RFC 4861 6.3.7) follow from it once it is assigned."""
    clock = VirtualClock()
    stack = Stack(clock, seed=5)
    link, peer = ChannelEndpoint.pair(clock)
    peer.written = []
    link.written = []
    nic = stack.create_nic(link, "eth0")
    link_local = ipv6_wire.link_local_from_mac(link.link_address)
    assert not nic.has_address(link_local)
    clock.advance(0.5)
    sent = [Ether(f) for f in link.written or []]
    assert [f[ICMPv6ND_NS].tgt for f in sent if f.haslayer(ICMPv6ND_NS)] == [
        str(ipaddress.ip_address(link_local))]
    assert not any(f.haslayer(ICMPv6ND_RS) for f in sent)
    clock.advance(0.6)
    assert nic.has_address(link_local)
    (rs,) = [Ether(f) for f in link.written or [] if Ether(f).haslayer(ICMPv6ND_RS)]
    assert rs[IPv6].src == str(ipaddress.ip_address(link_local))
