# SPDX-License-Identifier: MIT
"""The DHCPv4 client (RFC 2131 4.4) on a ustack guest, against the gateway's server on
the virtual clock: binding, retransmission, renewal, NAK, release and expiry; and
the asyncio wrapper on a real loop."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tests.unit.guest_link import FakeUpstream, GuestLink, make_guest_link
from ustack.apps import dhcp_client
from ustack.apps.dhcp_client import DHCPClient, Lease, acquire, prefix_length
from ustack.clock import RealClock
from ustack.forward.config import GuestNetwork
from ustack.forward.services import GuestServices
from ustack.link.channel import ChannelEndpoint
from ustack.route import RouteEntry
from ustack.stack import Stack, StackOptions

GUEST4 = ipaddress.IPv4Address("10.0.2.100").packed
GATEWAY4 = ipaddress.IPv4Address("10.0.2.2").packed
DEFAULT = RouteEntry(bytes(4), 0, GATEWAY4, 1)


def start_client(link: GuestLink) -> tuple[DHCPClient, list[Lease]]:
    leases: list[Lease] = []
    client = DHCPClient(link.guest, link.nic_guest, on_bound=leases.append)
    client.start()
    return client, leases


def sent_messages(link: GuestLink) -> list[tuple[int, str, str]]:
    """(DHCP message type, IP source, IP destination) of what the guest sent."""
    out: list[tuple[int, str, str]] = []
    for frame in map(Ether, link.link_guest.written or []):
        if frame.haslayer(BOOTP):
            options: dict[str, Any] = dict(o for o in frame[DHCP].options if isinstance(o, tuple))
            kind = options["message-type"]
            out.append((kind, frame[IP].src, frame[IP].dst))
    return out


def test_prefix_length_of_masks() -> None:
    assert prefix_length(bytes([255, 255, 255, 0]), GUEST4) == 24
    assert prefix_length(bytes([255, 0, 255, 0]), GUEST4) is None  # not contiguous
    assert prefix_length(None, GUEST4) == 8  # classful default for 10/8
    assert prefix_length(None, bytes([192, 168, 1, 1])) == 24


def test_client_binds_and_configures_the_stack() -> None:
    link = make_guest_link()
    link.record()
    client, leases = start_client(link)
    link.run(1.0)
    assert client.state == dhcp_client.BOUND
    [lease] = leases
    assert lease == client.lease
    assert (lease.address, lease.prefix_len, lease.server_id) == (GUEST4, 24, GATEWAY4)
    assert lease.routers == lease.dns_servers == (GATEWAY4,)
    assert (lease.domain_name, lease.mtu, lease.lease_time) == (b"guest.test", 1500, 3600)
    assert (lease.renewal_time, lease.rebinding_time) == (1800, 3150)
    guest = link.guest
    assert link.nic_guest.has_address(GUEST4)
    assert DEFAULT in guest.routes.entries()
    assert guest.routes.lookup(ipaddress.IPv4Address("198.51.100.1").packed) == DEFAULT
    assert GATEWAY4 in guest.dns_servers  # (the guest may also have RDNSS from RAs)
    # DISCOVER and REQUEST from 0.0.0.0 to everyone (RFC 2131 4.1)
    assert sent_messages(link) == [(1, "0.0.0.0", "255.255.255.255"),
                                   (3, "0.0.0.0", "255.255.255.255")]
    stats = link.gateway.stats
    assert (stats["dhcp.rx_discover"], stats["dhcp.tx_offer"], stats["dhcp.rx_request"],
            stats["dhcp.tx_ack"]) == (1, 1, 1, 1)


def test_discover_is_retransmitted_with_backoff() -> None:
    """RFC 2131 4.1: 4 s, then 8 s, then 16 s, each randomized by +-1 s."""
    link = make_guest_link(start=False)
    link.record()
    client, _ = start_client(link)

    def discovers() -> int:
        return sum(1 for kind, _src, _dst in sent_messages(link) if kind == 1)

    link.run(2.9)
    assert discovers() == 1
    link.run(2.2)  # t = 5.1: the first retransmission (3 to 5 s)
    assert discovers() == 2
    link.run(9.0)  # t = 14.1: the second (+7 to +9 s)
    assert discovers() == 3
    link.run(10.0)  # t = 24.1: the third comes after +15 s at least
    assert discovers() == 3
    link.services.start()  # the server comes up: the next DISCOVER is answered
    link.run(20.0)
    assert client.state == dhcp_client.BOUND


def test_renewal_at_t1_is_unicast_to_the_server() -> None:
    link = make_guest_link()
    client, leases = start_client(link)
    link.run(1.0)
    link.record()
    link.run(1800.0)  # T1
    assert sent_messages(link) == [(3, "10.0.2.100", "10.0.2.2")]
    assert client.state == dhcp_client.BOUND
    assert len(leases) == 2
    assert leases[1].acquired > leases[0].acquired + 1799
    v4 = [d for d in link.guest.dns_servers if len(d) == 4]  # RAs add the IPv6 one
    assert v4 == [GATEWAY4]  # not added twice
    assert link.gateway.stats["dhcp.tx_ack"] == 2


def test_nak_at_renewal_unconfigures_and_starts_over() -> None:
    link = make_guest_link()
    client, leases = start_client(link)
    link.run(1.0)
    other = ipaddress.IPv4Address("10.0.2.15").packed
    link.dhcp.address = other  # the server changed its mind
    link.run(1800.0)
    assert link.guest.stats["dhcp_client.nak"] == 1
    assert not link.nic_guest.has_address(GUEST4)
    link.run(5.0)
    assert client.state == dhcp_client.BOUND
    assert leases[-1].address == other and link.nic_guest.has_address(other)
    assert link.guest.routes.entries().count(DEFAULT) == 1
    subnets = [e for e in link.guest.routes.entries() if e.prefix == bytes([10, 0, 2, 0])]
    assert len(subnets) == 1


def test_release_gives_the_address_back() -> None:
    link = make_guest_link()
    client, _ = start_client(link)
    link.run(1.0)
    assert link.dhcp_lease() is not None
    link.record()
    client.close(release=True)
    link.run(1.0)
    assert sent_messages(link) == [(7, "10.0.2.100", "10.0.2.2")]
    assert link.dhcp_lease() is None
    assert not link.nic_guest.has_address(GUEST4)
    assert DEFAULT not in link.guest.routes.entries()
    assert [d for d in link.guest.dns_servers if len(d) == 4] == []  # DHCP's are gone
    assert client.state == dhcp_client.STOPPED


def test_lease_expires_when_no_server_answers() -> None:
    link = make_guest_link()
    client, _ = start_client(link)
    link.run(1.0)
    link.services.close()
    link.record()
    link.run(3150.0)  # T2: renewals went unanswered; rebinding broadcasts begin
    kinds = sent_messages(link)
    assert (3, "10.0.2.100", "10.0.2.2") in kinds
    assert (3, "10.0.2.100", "255.255.255.255") in kinds
    assert client.state == dhcp_client.REBINDING
    link.run(460.0)  # past the lease's end
    assert link.guest.stats["dhcp_client.expired"] == 1
    assert not link.nic_guest.has_address(GUEST4)
    assert DEFAULT not in link.guest.routes.entries()
    assert client.state == dhcp_client.SELECTING


def test_other_transactions_are_ignored() -> None:
    link = make_guest_link(start=False)
    client, _ = start_client(link)
    link.run(0.1)
    offer = (Ether(src="02:00:00:00:00:aa", dst="ff:ff:ff:ff:ff:ff")
             / IP(src="10.0.2.2", dst="255.255.255.255")
             / UDP(sport=67, dport=68)
             / BOOTP(op=2, xid=1, yiaddr="10.0.2.9", chaddr=link.link_guest.link_address)
             / DHCP(options=[("message-type", "offer"), ("server_id", "10.0.2.2"), "end"]))
    link.link_guest.inject(bytes(offer))
    link.run(0.1)
    assert client.state == dhcp_client.SELECTING
    assert link.guest.stats["dhcp_client.not_ours"] == 1


def test_acquire_on_a_real_asyncio_loop() -> None:
    async def main() -> Lease:
        clock = RealClock(asyncio.get_running_loop())
        gateway = Stack(clock, options=StackOptions(slaac=False))
        guest = Stack(clock, options=StackOptions(slaac=False))
        link_gw, link_guest = ChannelEndpoint.pair(clock)
        nic_gw = gateway.create_nic(link_gw)
        guest.create_nic(link_guest)
        services = GuestServices(gateway, nic_gw, GuestNetwork(dns_upstream=[]),
                                 dns_upstream=FakeUpstream())
        services.start()
        try:
            client, lease = await acquire(guest, timeout=5.0)
            client.close()
            return lease
        finally:
            services.close()

    lease = asyncio.run(main())
    assert (lease.address, lease.routers) == (GUEST4, (GATEWAY4,))
