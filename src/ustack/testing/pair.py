# SPDX-License-Identifier: MIT
"""Two stacks joined by an in-memory Ethernet link, addressed and ready, on one clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ustack.clock import VirtualClock
from ustack.contracts import LinkCapabilities, LinkEndpoint
from ustack.link.channel import ChannelEndpoint
from ustack.nic import NIC
from ustack.stack import Stack, StackOptions
from ustack.wire.ipv6 import link_local_from_mac

A4, B4 = "10.0.0.1", "10.0.0.2"
A6, B6 = "fd00::1", "fd00::2"

Wrap = Callable[[LinkEndpoint], LinkEndpoint]


@dataclass
class StackPair:
    clock: VirtualClock
    a: Stack
    b: Stack
    link_a: ChannelEndpoint  # the raw channel ends, under any wrapping
    link_b: ChannelEndpoint
    nic_a: NIC
    nic_b: NIC

    def run(self, seconds: float) -> None:
        self.clock.advance(seconds)


def make_pair(mtu: int = 1500, latency: float = 0.0, *,
              capabilities: LinkCapabilities = LinkCapabilities.RESOLUTION_REQUIRED,
              wrap_a: Wrap | None = None, wrap_b: Wrap | None = None,
              options: StackOptions | None = None, settle: bool = True,
              clock: VirtualClock | None = None) -> StackPair:
    """Stacks ``a`` (10.0.0.1, fd00::1) and ``b`` (10.0.0.2, fd00::2) on one channel.

    ``wrap_a``/``wrap_b`` wrap each side's link (a sniffer, an impairment) before
    the NIC is created. ``settle`` runs the clock briefly so start-up chatter
    (announcements, router solicitations) is out of the way.
    """
    clock = clock or VirtualClock()
    a = Stack(clock, options=options, seed=1)
    b = Stack(clock, options=options, seed=2)
    link_a, link_b = ChannelEndpoint.pair(clock, mtu=mtu, latency=latency,
                                          capabilities=capabilities)
    nic_a = a.create_nic(wrap_a(link_a) if wrap_a else link_a, "eth0")
    nic_b = b.create_nic(wrap_b(link_b) if wrap_b else link_b, "eth0")
    a.add_address("eth0", f"{A4}/24")
    b.add_address("eth0", f"{B4}/24")
    for stack, nic in ((a, nic_a), (b, nic_b)):  # the pair owns its link: no DAD
        stack.add_address("eth0", (link_local_from_mac(nic.link.link_address), 64),
                          connected_route=False, dad=False)
    a.add_address("eth0", f"{A6}/64", dad=False)
    b.add_address("eth0", f"{B6}/64", dad=False)
    if settle:
        clock.advance(0.01)
    return StackPair(clock, a, b, link_a, link_b, nic_a, nic_b)
