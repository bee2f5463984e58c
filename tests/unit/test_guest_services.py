# SPDX-License-Identifier: MIT
"""GuestServices: bringing DHCPv4, RAs, DHCPv6 and DNS up and down on a gateway NIC, and
a ustack guest configuring both families and its resolver from them alone."""

from __future__ import annotations

import errno
import ipaddress

import pytest
from scapy.layers.dns import DNS, DNSQR

from tests.unit.guest_link import FakeUpstream, make_guest_link
from ustack.apps.dhcp_client import DHCPClient
from ustack.clock import VirtualClock
from ustack.forward.config import GuestNetwork
from ustack.forward.services import GuestServices
from ustack.link.channel import ChannelEndpoint
from ustack.network.ipv6 import IPv6Protocol
from ustack.stack import Stack, StackOptions
from ustack.transport.udp import UDPEndpoint
from ustack.wire import dhcp, dhcpv6
from ustack.wire.proto import EtherType, IPProto


def packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def bound_ports(stack: Stack) -> set[int]:
    return {b.local_port for b in stack.demux[IPProto.UDP].bindings()}


def test_start_adds_the_gateway_addresses_once() -> None:
    link = make_guest_link(start=False)
    link.gateway.add_address(link.nic_gw.id, "10.0.2.2/24")  # one is there already
    link.services.start()
    nic = link.nic_gw
    for addr in ("10.0.2.2", "fd00:0:0:2::2", "fe80::2"):
        assert nic.has_address(packed(addr))
    assert [str(a) for a in nic.addresses[4]] == ["10.0.2.2/24"]
    assert bound_ports(link.gateway) >= {dhcp.SERVER_PORT, dhcpv6.SERVER_PORT, 53}


def test_a_host_stack_is_refused() -> None:
    clock = VirtualClock()
    stack = Stack(clock, options=StackOptions(slaac=True))
    nic = stack.create_nic(ChannelEndpoint.pair(clock)[0])
    with pytest.raises(ValueError, match="slaac=False"):
        GuestServices(stack, nic, GuestNetwork(dns_upstream=[])).start()


def test_a_stock_guest_configures_itself() -> None:
    link = make_guest_link()
    client = DHCPClient(link.guest, link.nic_guest)
    client.start()
    link.run(2.0)
    guest, nic = link.guest, link.nic_guest
    # IPv4 by DHCP, IPv6 by SLAAC from the RA; both default routes; both DNS servers
    assert nic.has_address(packed("10.0.2.100"))
    assert any(a.addr[:8] == packed("fd00:0:0:2::")[:8] for a in nic.addresses[16])
    assert guest.routes.lookup(packed("198.51.100.1")) is not None
    assert guest.routes.lookup(packed("2001:db8::1")) is not None
    # DHCP's server and the RDNSS of the router advertisements, in one list
    assert sorted(guest.dns_servers) == sorted([packed("10.0.2.2"), packed("fd00:0:0:2::2")])
    proto = guest.network_protocols[EtherType.IPV6]
    assert isinstance(proto, IPv6Protocol)
    assert packed("fd00:0:0:2::2") in proto.ndp.dns_servers  # (the stack's one list)
    # and the resolvers it learned answer (through the forwarder to the upstream)
    for server in (guest.dns_servers[0], proto.ndp.dns_servers[0]):
        ep = UDPEndpoint(guest, len(server))
        ep.sendto(bytes(DNS(id=1, rd=1, qd=DNSQR(qname="example.org"))), (server, 53))
    link.run(0.1)
    assert len(link.upstream.sent) == 2
    assert link.gateway.stats["dns.rx_query"] == 2


def test_close_releases_everything_and_start_again_works() -> None:
    link = make_guest_link()
    link.services.start()  # a second start does nothing
    link.services.close()
    link.services.close()
    assert bound_ports(link.gateway) == set()
    assert link.upstream.closed
    again = GuestServices(link.gateway, link.nic_gw, link.net, dns_upstream=FakeUpstream())
    again.start()
    assert bound_ports(link.gateway) >= {dhcp.SERVER_PORT, dhcpv6.SERVER_PORT, 53}
    again.close()


def test_a_failed_start_leaves_nothing_running() -> None:
    link = make_guest_link(start=False)
    link.gateway.add_address(link.nic_gw.id, "10.0.2.2/24")
    squatter = UDPEndpoint(link.gateway, 4)
    squatter.bind(packed("10.0.2.2"), 53)
    with pytest.raises(OSError) as info:
        link.services.start()
    assert info.value.errno == errno.EADDRINUSE
    assert not link.services.running
    assert link.upstream.closed
    assert bound_ports(link.gateway) == {53}  # only the squatter


def test_services_can_be_left_out() -> None:
    link = make_guest_link(start=False)
    services = GuestServices(link.gateway, link.nic_gw, link.net, router_advertisements=False,
                             dhcpv6=False, dns=False)
    link.record()
    services.start()
    link.run(100.0)
    assert services.ra is None and services.dhcpv6 is None and services.dns is None
    assert bound_ports(link.gateway) == {dhcp.SERVER_PORT}
    assert link.gateway.stats["ra.tx"] == 0
    services.close()
