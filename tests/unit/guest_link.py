# SPDX-License-Identifier: MIT
"""A guest link on the virtual clock: a gateway stack (a router: slaac=False) whose
NIC runs the guest services, and a guest stack (a host: slaac=True) with no
address but its link-local one, on one in-memory channel."""

from __future__ import annotations

from dataclasses import dataclass, field

from ustack.clock import VirtualClock
from ustack.forward.config import GuestNetwork
from ustack.forward.dhcp import DHCPServer, Lease
from ustack.forward.dns import Address, DNSForwarder, ErrorHandler, ResponseHandler
from ustack.forward.services import GuestServices
from ustack.link.channel import ChannelEndpoint
from ustack.nic import NIC
from ustack.stack import Stack, StackOptions


@dataclass
class FakeUpstream:
    """An upstream DNS transport that records what is sent; tests answer by hand."""

    sent: list[tuple[bytes, Address]] = field(default_factory=list)
    closed: bool = False

    def start(self, on_response: ResponseHandler, on_error: ErrorHandler) -> None:
        self.on_response = on_response
        self.on_error = on_error

    def send(self, data: bytes, server: Address) -> None:
        self.sent.append((data, server))

    def reply(self, data: bytes, server: Address) -> None:
        self.on_response(data, server)

    def close(self) -> None:
        self.closed = True


@dataclass
class GuestLink:
    clock: VirtualClock
    gateway: Stack
    guest: Stack
    link_gw: ChannelEndpoint
    link_guest: ChannelEndpoint
    nic_gw: NIC
    nic_guest: NIC
    net: GuestNetwork
    services: GuestServices
    upstream: FakeUpstream

    @property
    def dhcp(self) -> DHCPServer:
        """The gateway's DHCPv4 server (on unless the test's GuestNetwork turned it off)."""
        assert self.services.dhcp is not None, "no DHCPv4 server on this link"
        return self.services.dhcp

    def dhcp_lease(self) -> Lease | None:
        """The DHCPv4 server's lease now (a call, so mypy does not keep an earlier
        ``is not None`` narrowing after the exchanges that change it)."""
        return self.dhcp.lease

    @property
    def dns(self) -> DNSForwarder:
        """The gateway's DNS forwarder (on unless the test turned it off)."""
        assert self.services.dns is not None, "no DNS forwarder on this link"
        return self.services.dns

    def run(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def record(self) -> None:
        self.link_gw.written = []
        self.link_guest.written = []


def make_guest_link(net: GuestNetwork | None = None, *, start: bool = True, mtu: int = 1500,
                    dns_servers: list[Address] | None = None) -> GuestLink:
    """``start`` starts the services (and runs the clock a little); the DNS forwarder
    relays to ``dns_servers`` (default: one fake server) through a FakeUpstream."""
    clock = VirtualClock()
    net = net or GuestNetwork(dns_upstream=[], domain="guest.test")
    gateway = Stack(clock, options=StackOptions(slaac=False), seed=11)
    guest = Stack(clock, options=StackOptions(slaac=True), seed=12)
    link_gw, link_guest = ChannelEndpoint.pair(clock, mtu=mtu)
    nic_gw = gateway.create_nic(link_gw, "guest0")
    nic_guest = guest.create_nic(link_guest, "eth0")
    upstream = FakeUpstream()
    servers = dns_servers if dns_servers is not None else [("192.0.2.53", 53)]
    services = GuestServices(gateway, nic_gw, net, dns_upstream=upstream, dns_servers=servers)
    link = GuestLink(clock, gateway, guest, link_gw, link_guest, nic_gw, nic_guest, net,
                     services, upstream)
    if start:
        services.start()
        clock.advance(0.01)
    return link
