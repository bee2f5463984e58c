# SPDX-License-Identifier: MIT
"""The gateway's DHCPv6 server and router advertiser hold their multicast groups
(ff02::1:2, RFC 8415 7.1; ff02::2, RFC 4861 6.2.2) through the stack's reference-counted
memberships: a socket on the gateway joining and leaving the same group on the same
NIC takes nothing from them, and MLD reports the groups (RFC 3810 6.1)."""

from __future__ import annotations

import socket
import struct

import pytest
from scapy.layers.dhcp6 import DHCP6_Advertise
from scapy.layers.inet6 import ICMPv6ND_RA
from scapy.layers.l2 import Ether

from tests.unit.guest_link import GuestLink, make_guest_link
from tests.unit.test_dhcpv6_server import exchange, solicit
from tests.unit.test_ra import rs_frame
from ustack.socket import DatagramSocket
from ustack.wire import dhcpv6, mld
from ustack.wire import ipv6 as ip_wire


@pytest.fixture
def link() -> GuestLink:
    link = make_guest_link()
    link.run(5.0)  # past the start-up advertisements and MIN_DELAY_BETWEEN_RAS
    link.record()
    return link


def join_and_leave(link: GuestLink, group: bytes) -> None:
    sock = link.gateway.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    assert isinstance(sock, DatagramSocket)
    mreq = struct.pack("=16sI", group, link.nic_gw.id)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, mreq)
    sock.close()


def mld_groups(link: GuestLink) -> set[bytes]:
    """The groups in the gateway's MLDv2 reports since the last record()."""
    groups: set[bytes] = set()
    for frame in link.link_gw.written or []:
        # Ethernet (14), IPv6 (40, next header 0), hop-by-hop (8, next header 58), MLD
        if frame[12:14] != b"\x86\xdd" or frame[20] != 0 or frame[54] != 58 or (
                frame[62] not in mld.TYPES):
            continue
        src, dst = frame[22:38], frame[38:54]
        message = mld.parse(frame[62:], src, dst)
        if isinstance(message, mld.V2Report):
            groups |= {r.group for r in message.records}
    return groups


def test_services_groups_are_reported_by_mld_as_they_start() -> None:
    """RFC 3810 6.1: the first join of a group is reported at once, before time passes."""
    link = make_guest_link(start=False)
    link.record()
    link.services.start()
    assert {dhcpv6.ALL_DHCP_RELAY_AGENTS_AND_SERVERS, ip_wire.ALL_ROUTERS} <= mld_groups(link)


def test_a_socket_leaving_ff02_1_2_does_not_silence_the_dhcpv6_server(link: GuestLink) -> None:
    group = dhcpv6.ALL_DHCP_RELAY_AGENTS_AND_SERVERS
    join_and_leave(link, group)
    assert group in link.nic_gw.multicast_groups
    [reply] = exchange(link, solicit())
    assert reply.haslayer(DHCP6_Advertise)
    assert link.gateway.stats["dhcpv6.tx_advertise"] == 1


def test_a_socket_leaving_ff02_2_does_not_silence_router_solicitations(link: GuestLink) -> None:
    join_and_leave(link, ip_wire.ALL_ROUTERS)
    assert ip_wire.ALL_ROUTERS in link.nic_gw.multicast_groups
    link.link_gw.inject(rs_frame())
    link.run(1.0)
    assert [f for f in map(Ether, link.link_gw.written or []) if f.haslayer(ICMPv6ND_RA)]
    assert link.gateway.stats["ra.tx_solicited"] == 1


def test_stopping_the_services_leaves_their_groups() -> None:
    link = make_guest_link()
    link.run(1.0)
    link.services.close()
    groups = link.nic_gw.multicast_groups
    assert dhcpv6.ALL_DHCP_RELAY_AGENTS_AND_SERVERS not in groups
    assert ip_wire.ALL_ROUTERS not in groups
