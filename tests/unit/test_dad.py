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
from scapy.layers.inet6 import (
    ICMPv6MLDMultAddrRec,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import Ether

from tests.unit.stackframes import Packet, frames, inject, mac_text, packed, record
from tests.unit.test_ndp import (
    DAD_TIME,
    PREFIX,
    ROUTER_LL,
    ROUTER_MAC,
    ndp_frame,
    neighbor_advertisement,
    neighbor_solicitation,
    prefix,
    router_advertisement,
    slaac_address,
)
from ustack.clock import VirtualClock
from ustack.link.channel import ChannelEndpoint
from ustack.network.dad import MAX_RTR_SOLICITATION_DELAY, DuplicateAddressDetection
from ustack.network.ipv6 import IPv6Protocol
from ustack.stack import Stack, StackOptions
from ustack.testing.pair import StackPair, make_pair
from ustack.wire import icmp6
from ustack.wire import ipv6 as ipv6_wire
from ustack.wire import ndp as ndp_wire
from ustack.wire.proto import EtherType

NEW = "fd00::a"
NEW_GROUP = "ff02::1:ff00:a"
CHANGE_TO_EXCLUDE, CHANGE_TO_INCLUDE = 4, 3  # MLDv2 record types (RFC 3810 5.2.12)


def unicast_advertisement(pair: StackPair) -> bytes:
    """A router advertisement with PREFIX for b, sent to b's own address."""
    options = (ndp_wire.link_addr_option(ndp_wire.OPT_SOURCE_LINK_ADDR,
                                         bytes.fromhex(ROUTER_MAC.replace(":", "")))
               + ndp_wire.prefix_option(prefix()))
    rest = ndp_wire.router_advertisement_rest(64, False, False, 1800)
    return ndp_frame(ROUTER_MAC, mac_text(pair.link_b.link_address), ROUTER_LL, "fd00::2",
                     icmp6.ROUTER_ADVERTISEMENT, rest, bytes(8) + options)


def reports_for(link: ChannelEndpoint, group: str) -> list[int]:
    """The MLDv2 record types ``link``'s stack sent about ``group``, in order."""
    out: list[int] = []
    for frame in frames(link, ICMPv6MLReport2):
        for rec in frame[ICMPv6MLReport2].records:
            assert isinstance(rec, ICMPv6MLDMultAddrRec)
            if rec.dst == group:
                out.append(int(rec.rtype))
    return out


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
    delayed = pair.b.stats["ndp.dad_delayed"]
    # a unicast advertisement (an answer to our solicitation): probed at once
    inject(pair.link_b, unicast_advertisement(pair))
    pair.run(0.01)
    addr = slaac_address(PREFIX, pair.link_b.link_address)
    text = str(ipaddress.ip_address(addr))
    assert not pair.nic_b.has_address(addr)
    assert [f[ICMPv6ND_NS].tgt for f in frames(pair.link_b, ICMPv6ND_NS)
            if f[IPv6].src == "::"] == [text]
    assert pair.b.stats["ndp.dad_delayed"] == delayed
    pair.run(1.0)
    assert pair.nic_b.has_address(addr)


def test_rfc4862_5_4_2_a_multicast_advertisement_delays_the_probe(pair: StackPair) -> None:
    """Every host hears the same advertisement: each waits 0..MAX_RTR_SOLICITATION_DELAY
    before joining the solicited-node group and probing."""
    record(pair)
    delayed = pair.b.stats["ndp.dad_delayed"]
    inject(pair.link_b, router_advertisement(prefixes=(prefix(),)))  # to ff02::1
    addr = slaac_address(PREFIX, pair.link_b.link_address)
    text = str(ipaddress.ip_address(addr))
    waited = 0.0
    while not frames(pair.link_b, ICMPv6ND_NS):
        assert waited <= MAX_RTR_SOLICITATION_DELAY
        pair.run(0.01)
        waited += 0.01
    assert waited > 0.01
    (probe,) = frames(pair.link_b, ICMPv6ND_NS)
    assert probe[ICMPv6ND_NS].tgt == text and probe[IPv6].src == "::"
    assert pair.b.stats["ndp.dad_delayed"] == delayed + 1
    pair.run(1.0)
    assert pair.nic_b.has_address(addr)


def test_link_local_address_goes_through_dad_before_router_solicitation() -> None:
    """RFC 4862 5.3/5.4: the link-local address is verified first; router solicitations
    (RFC 4861 6.3.7) follow from it once it is assigned. Its probe is the first message the
    interface sends, so it waits a random 0..1 s (5.4.2)."""
    clock = VirtualClock()
    stack = Stack(clock, seed=5)
    link, peer = ChannelEndpoint.pair(clock)
    peer.written = []
    link.written = []
    nic = stack.create_nic(link, "eth0")
    link_local = ipv6_wire.link_local_from_mac(link.link_address)
    assert not nic.has_address(link_local)
    assert link.written == []  # not even the MLD report of the solicited-node group
    clock.advance(MAX_RTR_SOLICITATION_DELAY)
    sent = [Ether(f) for f in link.written or []]
    assert [f[ICMPv6ND_NS].tgt for f in sent if f.haslayer(ICMPv6ND_NS)] == [
        str(ipaddress.ip_address(link_local))]
    assert not any(f.haslayer(ICMPv6ND_RS) for f in sent)
    assert stack.stats["ndp.dad_delayed"] == 1
    group = str(ipaddress.ip_address(ipv6_wire.solicited_node(link_local)))
    assert reports_for(link, group) == [CHANGE_TO_EXCLUDE]  # joined when probing began
    clock.advance(1.01)
    assert nic.has_address(link_local)
    (rs,) = [Ether(f) for f in link.written or [] if Ether(f).haslayer(ICMPv6ND_RS)]
    assert rs[IPv6].src == str(ipaddress.ip_address(link_local))


def test_rfc4862_5_4_2_the_initial_delay_is_random() -> None:
    delays = set()
    for seed in range(1, 6):
        clock = VirtualClock()
        stack = Stack(clock, seed=seed)
        link, _peer = ChannelEndpoint.pair(clock)
        link.written = []
        stack.create_nic(link, "eth0")
        steps = 0
        while not link.written:
            clock.advance(0.01)
            steps += 1
        assert 0 < steps <= 101
        delays.add(steps)
    assert len(delays) >= 3
