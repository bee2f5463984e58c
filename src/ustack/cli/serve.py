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
from ustack.forward.portfwd import PortSpecError, parse_ports
from ustack.forward.services import GuestServices
from ustack.link.sniffer import SnifferEndpoint
from ustack.runtime import new_stack
from ustack.stack import Stack, StackOptions


def add_forwarding_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-t", "--tcp-ports", action="append", default=[], metavar="SPEC",
        help="forward host TCP ports into the guest: PORT[:GUESTPORT], ranges A-B, lists")
    add("-u", "--udp-ports", action="append", default=[], metavar="SPEC",
        help="forward host UDP ports likewise")
    add("--no-map-gw", action="store_true",
        help="do not map the gateway address to the host's loopback")
    add("--pcap", type=Path, metavar="FILE", help="record the guest link to a pcap file")


def forwarding_setup(args: argparse.Namespace, net: GuestNetwork,
                     ) -> tuple[GuestNetwork, list[tuple[int, int]], list[tuple[int, int]]]:
    try:
        tcp_ports = parse_ports(args.tcp_ports)
        udp_ports = parse_ports(args.udp_ports)
    except PortSpecError as exc:
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
        return (f"tcp {c.get('forward.tcp_flows', 0)} flows, udp {c.get('forward.udp_flows', 0)}, "
                f"icmp {c.get('forward.icmp_echo', 0)} echoes, "
                f"{self.stack.stats['drops']} drops")


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
