# SPDX-License-Identifier: MIT
"""What ``ustack run`` and ``ustack passt`` share: options, and serving one guest link
(stack, gateway addresses, guest services, the forwarder, port forwarding, pcap)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from ustack.cli.errors import UserError
from ustack.contracts import LinkEndpoint
from ustack.forward.config import GuestNetwork
from ustack.forward.forwarder import Forwarder
from ustack.forward.guest_addresses import AddressError, Addressing, apply_addressing
from ustack.forward.portfwd import PortSpecError, parse_ports
from ustack.forward.services import GuestServices
from ustack.link.sniffer import SnifferEndpoint
from ustack.runtime import new_stack
from ustack.stack import Stack, StackOptions


def add_addressing_arguments(parser: argparse.ArgumentParser) -> None:
    """pasta's addressing options (see :mod:`ustack.forward.guest_addresses`)."""
    group = parser.add_argument_group(
        "guest addresses", "as pasta's options; default: 10.0.2.100/24 via 10.0.2.2,\n"
        "fd00:0:0:2::100/64 via fd00:0:0:2::2, DNS at the gateways")
    add = group.add_argument
    add("-a", "--address", action="append", default=[], metavar="ADDR[/PREFIX]",
        help="the guest's IPv4 or IPv6 address (once per family; prefix default /24, /64)")
    add("-n", "--netmask", metavar="MASK",
        help="the guest's IPv4 netmask: 255.255.255.0 or a length such as 24")
    add("-g", "--gateway", action="append", default=[], metavar="ADDR",
        help="ustack's address on the guest link, IPv4 or IPv6, inside the guest's prefix "
             "(once per family)")
    add("-4", "--ipv4-only", action="store_true",
        help="IPv4 only: IPv6 is neither configured nor forwarded")
    add("-6", "--ipv6-only", action="store_true",
        help="IPv6 only: IPv4 is neither configured nor forwarded")
    add("--dns-forward", action="append", default=[], metavar="ADDR",
        help="the address the guest sends DNS queries to, answered by ustack's forwarder "
             "(default: the gateway; once per family)")
    add("-D", "--dns", action="append", default=[], metavar="ADDR",
        help="the resolver ustack's DNS forwarder asks (default: the host's "
             "/etc/resolv.conf; repeatable)")


def add_forwarding_arguments(parser: argparse.ArgumentParser) -> None:
    add_addressing_arguments(parser)
    add = parser.add_argument
    add("-t", "--tcp-ports", action="append", default=[], metavar="SPEC",
        help="forward host TCP ports into the guest: PORT[:GUESTPORT], ranges A-B, lists")
    add("-u", "--udp-ports", action="append", default=[], metavar="SPEC",
        help="forward host UDP ports likewise")
    add("--no-map-gw", action="store_true",
        help="do not map the gateway address to the host's loopback")
    add("-p", "--pcap", type=Path, metavar="FILE", help="record the guest link to a pcap file")


def forwarding_setup(args: argparse.Namespace, net: GuestNetwork,
                     ) -> tuple[GuestNetwork, list[tuple[int, int]], list[tuple[int, int]]]:
    try:
        tcp_ports = parse_ports(args.tcp_ports)
        udp_ports = parse_ports(args.udp_ports)
    except PortSpecError as exc:
        raise UserError(str(exc)) from None
    try:
        apply_addressing(net, Addressing(
            addresses=args.address, gateways=args.gateway, netmask=args.netmask,
            ipv4_only=args.ipv4_only, ipv6_only=args.ipv6_only, dns_forward=args.dns_forward,
            dns=args.dns))
    except AddressError as exc:
        raise UserError(str(exc)) from None
    net.map_host_loopback = not args.no_map_gw
    return net, tcp_ports, udp_ports


@dataclass
class Served:
    stack: Stack
    forwarder: Forwarder
    services: GuestServices

    def summary(self) -> str:
        c = self.forwarder.counters()
        stats = self.stack.stats
        reasons = ", ".join(f"{name.replace('.drop.', ' ')} {n}"
                            for name, n in stats.snapshot().items() if ".drop." in name)
        return (f"tcp {c.get('forward.tcp_flows', 0)} flows, udp {c.get('forward.udp_flows', 0)}, "
                f"icmp {c.get('forward.icmp_echo', 0)} echoes, "
                f"{stats['drops']} drops" + (f" ({reasons})" if reasons else ""))


@contextlib.asynccontextmanager
async def serve_guest_link(link: LinkEndpoint, net: GuestNetwork,
                           tcp_ports: list[tuple[int, int]], udp_ports: list[tuple[int, int]],
                           *, router_advertisements: bool = True,
                           pcap: Path | None = None) -> AsyncIterator[Served]:
    """A gateway stack on ``link`` with services and forwarding, torn down on exit."""
    loop = asyncio.get_running_loop()
    stack = new_stack(loop, options=StackOptions(slaac=False, announce=False))
    if pcap is not None:
        link = SnifferEndpoint.to_file(link, stack.clock, str(pcap))
    nic = stack.create_nic(link, "guest")
    services = GuestServices(stack, nic, net, router_advertisements=router_advertisements)
    forwarder = Forwarder(stack, nic, net, loop)
    try:
        try:
            forwarder.forward_ports(tcp_ports, udp_ports)
        except OSError as exc:
            raise UserError(exc.strerror or str(exc)) from None
        services.start()
        yield Served(stack, forwarder, services)
    finally:
        forwarder.close()
        services.close()
        if pcap is not None:
            link.close()
