# SPDX-License-Identifier: MIT
"""What DAD leaves behind: removing a tentative address (RFC 4862 5.4) stops its probes and
takes its route and solicited-node group along; a duplicate link-local address formed from
the hardware address turns IPv6 off on the NIC (5.4.5); an on-link prefix's route belongs
to the Prefix List (RFC 4861 6.3.4), not to the addresses configured in it."""

from __future__ import annotations

import ipaddress
import logging
import socket

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether

from tests.unit.stackframes import frames, inject, packed, record
from tests.unit.test_dad import CHANGE_TO_EXCLUDE, CHANGE_TO_INCLUDE, dad_of, reports_for
from tests.unit.test_ndp import DAD_TIME, PREFIX, neighbor_solicitation, prefix, slaac_address
from tests.unit.test_slaac_lifetimes import advertise, ndp_of, ra
from ustack.clock import VirtualClock
from ustack.link.channel import ChannelEndpoint
from ustack.network.mld import MLDProtocol
from ustack.nic import NIC
from ustack.stack import Stack
from ustack.testing.pair import StackPair
from ustack.wire import ipv6 as ipv6_wire

ADDR = "fd01::a"  # a subnet of its own: its connected route is its alone
GROUP = "ff02::1:ff00:a"


def member(stack: Stack, nic: NIC, group: str) -> bool:
    mld = stack.group_protocols[16]
    assert isinstance(mld, MLDProtocol)
    return mld.groups.is_member(nic, packed(group))


def test_removing_a_probing_address_stops_dad_and_undoes_its_setup(pair: StackPair) -> None:
    record(pair)
    pair.a.add_address("eth0", f"{ADDR}/64")
    pair.run(0.01)  # probing: group joined and reported, one probe out
    assert member(pair.a, pair.nic_a, GROUP)
    assert pair.a.routes.lookup(packed("fd01::5")) is not None
    assert pair.a.remove_address(ADDR)
    assert pair.a.local_nic(packed(ADDR)) is None
    assert not dad_of(pair.a).is_tentative(packed(ADDR))
    assert pair.a.routes.lookup(packed("fd01::5")) is None
    assert not member(pair.a, pair.nic_a, GROUP)
    assert reports_for(pair.link_a, GROUP) == [CHANGE_TO_EXCLUDE, CHANGE_TO_INCLUDE]
    assert pair.a.stats["ndp.dad_cancelled"] == 1
    pair.run(DAD_TIME)
    assert not pair.nic_a.has_address(packed(ADDR))
    assert len([f for f in frames(pair.link_a, ICMPv6ND_NS) if f[IPv6].src == "::"]) == 1
    assert pair.a.stats["ndp.dad_succeeded"] == 0
    assert not pair.a.remove_address(ADDR)  # gone already
    # added again: DAD afresh, then assigned
    pair.a.add_address("eth0", f"{ADDR}/64")
    pair.run(DAD_TIME)
    assert pair.nic_a.has_address(packed(ADDR)) and member(pair.a, pair.nic_a, GROUP)


def test_removing_an_address_still_waiting_to_probe_sends_nothing() -> None:
    """Before its random delay (RFC 4862 5.4.2) ran out, nothing was joined or sent."""
    clock = VirtualClock()
    stack = Stack(clock, seed=3)
    link, _peer = ChannelEndpoint.pair(clock)
    link.written = []
    nic = stack.create_nic(link, "eth0")
    stack.add_address("eth0", f"{ADDR}/64")  # nothing sent yet: delayed too
    assert stack.remove_address(ADDR)
    assert stack.routes.lookup(packed("fd01::5")) is None
    clock.advance(3.0)
    sent = [Ether(f) for f in link.written or []]
    assert [f[ICMPv6ND_NS].tgt for f in sent if f.haslayer(ICMPv6ND_NS)] == [
        str(ipaddress.ip_address(ipv6_wire.link_local_from_mac(link.link_address)))]
    assert not member(stack, nic, GROUP)


def test_removing_a_tentative_address_keeps_a_shared_solicited_node_group(
        pair: StackPair) -> None:
    """A SLAAC address and the link-local address share an interface identifier, so one
    solicited-node group: dropping the tentative one must not leave it for both."""
    addr = slaac_address(PREFIX, pair.link_b.link_address)
    group = str(ipaddress.ip_address(ipv6_wire.solicited_node(addr)))
    pair.b.add_address("eth0", (addr, 64))
    pair.run(0.01)
    assert dad_of(pair.b).is_tentative(addr)
    assert pair.b.remove_address(addr)
    assert member(pair.b, pair.nic_b, group)
    assert packed(group) in pair.nic_b.multicast_groups
    # the link-local address still answers resolution through that group
    link_local = ipv6_wire.link_local_from_mac(pair.link_b.link_address)
    ll_text = str(ipaddress.ip_address(link_local))
    record(pair)
    inject(pair.link_b, neighbor_solicitation(pair, "fe80::99", group, ll_text,
                                              "02:00:00:00:00:99"))
    pair.run(0.01)
    assert pair.b.stats["ndp.tx_na"] >= 1


def fresh_stack(seed: int = 7) -> tuple[VirtualClock, Stack, ChannelEndpoint, NIC]:
    clock = VirtualClock()
    stack = Stack(clock, seed=seed)
    link, _peer = ChannelEndpoint.pair(clock)
    link.written = []
    nic = stack.create_nic(link, "eth0")
    return clock, stack, link, nic


def test_rfc4862_5_4_5_duplicate_hardware_link_local_disables_ipv6(
        caplog: pytest.LogCaptureFixture) -> None:
    clock, stack, link, nic = fresh_stack()
    link_local = str(ipaddress.ip_address(ipv6_wire.link_local_from_mac(link.link_address)))
    group = str(ipaddress.ip_address(ipv6_wire.solicited_node(packed(link_local))))
    stack.add_address("eth0", "fd00::5/64")  # tentative as well
    with caplog.at_level(logging.ERROR, logger="ustack.ndp"):
        # another node with our MAC probes for the same link-local address
        probe = (Ether(src="02:00:00:00:00:99", dst="33:33:ff" + link.link_address.hex(":")[8:])
                 / IPv6(src="::", dst=group, hlim=255))
        inject(link, bytes(probe / ICMPv6ND_NS(tgt=link_local)))
        clock.advance(0.01)
    assert stack.stats["ndp.dad_duplicate"] == 1
    assert stack.stats["ndp.ipv6_disabled"] == 1
    assert "IPv6 disabled" in caplog.text and link_local in caplog.text
    assert nic.addresses[16] == [] and dad_of(stack).tentative_addresses(nic) == []
    assert stack.local_nic(packed("fd00::5")) is None
    link.written = []
    clock.advance(20.0)  # no probes, no router solicitations, no MLD reports
    assert [f for f in frames_of(link) if f.haslayer(IPv6)] == []
    # an address given by hand later still sends nothing, and answers nothing
    stack.add_address("eth0", "fd00::5/64", dad=False)
    sock = stack.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.sendto(b"x", ("fd00::9", 9))
    echo = (Ether(src="02:00:00:00:00:99", dst=link.link_address.hex(":"))
            / IPv6(src="fd00::9", dst="fd00::5") / ICMPv6EchoRequest(id=1, seq=1))
    inject(link, bytes(echo))
    clock.advance(5.0)
    assert [f for f in frames_of(link) if f.haslayer(IPv6)] == []
    assert not any(f.haslayer(ICMPv6EchoReply) for f in frames_of(link))
    assert stack.stats["ipv6.drop.link_down"] == 1  # the echo request
    assert nic.stats["nic.drop.link_down"] >= 2  # MLD report, neighbor solicitation
    # IPv4 goes on
    stack.add_address("eth0", "10.9.0.1/24")
    sock4 = stack.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock4.sendto(b"x", ("10.9.0.2", 9))
    clock.advance(0.01)
    assert any(f.haslayer(ARP) for f in frames_of(link))


def test_a_duplicate_address_of_another_kind_leaves_ipv6_on(pair: StackPair) -> None:
    pair.a.add_address("eth0", "fd00::2/64")  # b holds it and defends it
    pair.run(DAD_TIME)
    assert pair.a.stats["ndp.dad_duplicate"] == 1
    assert pair.a.stats["ndp.ipv6_disabled"] == 0
    assert pair.a.routes.lookup(packed("fd00::2")) is not None  # fd00::1's route stays
    record(pair)
    sock = pair.a.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.sendto(b"x", ("fd00::2", 9))
    pair.run(0.01)
    (sent,) = frames(pair.link_a, UDP)
    assert sent[IPv6].src == "fd00::1" and sent[IPv6].dst == "fd00::2"


def frames_of(link: ChannelEndpoint) -> list[Ether]:
    return [Ether(f) for f in link.written or []]


# --- the on-link prefix owns its route (RFC 4861 6.3.4) ----------------------------------------

def test_a_prefix_route_outlives_a_hand_configured_address_in_it(pair: StackPair) -> None:
    target = packed("2001:db8:1::99")
    pair.b.add_address("eth0", "2001:db8:1::5/64", dad=False)
    advertise(pair, ra(lifetime=0, prefixes=(prefix(autonomous=False, valid=100, preferred=100),)))
    assert pair.b.remove_address("2001:db8:1::5")
    assert pair.b.find_route(target).next_hop == target  # the Prefix List holds it
    pair.run(101.0)
    assert pair.b.routes.lookup(target) is None
    assert pair.b.stats["ndp.prefix_expired"] == 1


def test_a_hand_configured_address_outlives_its_prefix_expiring(pair: StackPair) -> None:
    target = packed("2001:db8:1::99")
    advertise(pair, ra(lifetime=0, prefixes=(prefix(autonomous=False, valid=100, preferred=100),)))
    pair.b.add_address("eth0", "2001:db8:1::5/64", dad=False)
    pair.run(101.0)
    assert pair.b.stats["ndp.prefix_expired"] == 1
    assert pair.b.find_route(target).next_hop == target  # the address holds it
    assert pair.b.remove_address("2001:db8:1::5")
    assert pair.b.routes.lookup(target) is None


def test_slaac_address_removed_by_hand_is_configured_again(pair: StackPair) -> None:
    """Its lifetimes go with it, so the next advertisement forms it afresh (5.5.3 (d))."""
    advertise(pair, ra(prefixes=(prefix(),)), DAD_TIME)
    addr = slaac_address(PREFIX, pair.link_b.link_address)
    assert pair.b.remove_address(addr)
    assert addr not in ndp_of(pair).valid
    target = packed("2001:db8:1::99")
    assert pair.b.find_route(target).next_hop == target  # on-link still
    advertise(pair, ra(prefixes=(prefix(),)), DAD_TIME)
    assert pair.nic_b.has_address(addr)
    assert pair.b.stats["ndp.slaac_address"] == 2
