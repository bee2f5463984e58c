# SPDX-License-Identifier: MIT
"""The services that configure a stock guest on one link: DHCPv4, router
advertisements, DHCPv6 and DNS forwarding, on the gateway side of the link."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from ustack.forward.dhcp import DHCPServer
from ustack.forward.dhcpv6 import DHCPv6Server
from ustack.forward.dns import DNS_PORT, Address, DNSForwarder, Upstream
from ustack.forward.ra import RouterAdvertiser
from ustack.stack import parse_interface

if TYPE_CHECKING:
    from ustack.forward.config import GuestNetwork
    from ustack.nic import NIC
    from ustack.stack import Stack


class Service(Protocol):
    def start(self) -> None: ...

    def close(self) -> None: ...


class GuestServices:
    """Everything a guest with a stock DHCP client and IPv6 autoconfiguration needs.

    The stack must be a router on this link, not a host: create it with
    ``StackOptions(slaac=False)``. Each service can be left out (as passt's
    ``--no-dhcp``, ``--no-ra``...). ``dns_servers`` overrides ``net.dns_upstream``
    (as host, port pairs); ``dns_upstream`` replaces the kernel-socket transport.
    ``start`` and ``close`` run on the stack's loop and return at once.
    """

    def __init__(self, stack: Stack, nic: NIC, net: GuestNetwork, *,
                 dhcp: bool = True, router_advertisements: bool = True, dhcpv6: bool = True,
                 dns: bool = True, dns_upstream: Upstream | None = None,
                 dns_servers: Sequence[Address] | None = None) -> None:
        self.stack = stack
        self.nic = nic
        self.net = net
        servers = (list(dns_servers) if dns_servers is not None
                   else [(host, DNS_PORT) for host in net.dns_upstream])
        # a family turned off (-4/-6) gets no configuration service at all
        self.dhcp = DHCPServer(stack, nic, net) if dhcp and net.ipv4 else None
        self.ra = (RouterAdvertiser(stack, nic, net) if router_advertisements and net.ipv6
                   else None)
        self.dhcpv6 = DHCPv6Server(stack, nic, net) if dhcpv6 and net.ipv6 else None
        self.dns = (DNSForwarder(stack, self._dns_addresses(), servers, dns_upstream)
                    if dns else None)
        self.running = False

    def _dns_addresses(self) -> list[bytes]:
        """The forwarder answers on every gateway address and on the --dns-forward ones
        (the RA, DHCP and DHCPv6 name the latter, or the gateway)."""
        return [ipaddress.ip_address(a).packed for a in self.net.dns_addresses()]

    def _services(self) -> list[Service]:
        return [s for s in (self.dhcp, self.ra, self.dhcpv6, self.dns) if s is not None]

    def start(self) -> None:
        """Add the gateway addresses the NIC lacks, then start each service."""
        if self.running:
            return
        if self.stack.options.slaac:
            raise ValueError("the gateway stack is a router: create it with "
                             "StackOptions(slaac=False)")
        for iface in self.net.gateway_interfaces():
            addr, plen = parse_interface(iface)
            if not self.nic.has_address(addr):
                # no DAD: the gateway owns the link (see ustack.network.dad)
                self.stack.add_address(self.nic.id, (addr, plen), dad=False)
        started: list[Service] = []
        try:
            for service in self._services():
                service.start()
                started.append(service)
        except BaseException:
            for service in reversed(started):
                service.close()
            raise
        self.running = True

    def close(self) -> None:
        if not self.running:
            return
        self.running = False
        for service in reversed(self._services()):
            service.close()
