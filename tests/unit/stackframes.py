# SPDX-License-Identifier: MIT
"""Helpers for the stack-level tests: record what a link wrote, decode it with scapy.

scapy is the independent oracle here: frames the stack emits are decoded by
code that is not ustack's own, and hand-made input frames are built by it.
"""

from __future__ import annotations

import ipaddress

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet

from ustack.link.channel import ChannelEndpoint
from ustack.testing.pair import StackPair

__all__ = ["ARP", "ICMP", "IP", "UDP", "Ether", "IPv6", "Packet"]


def packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def record(pair: StackPair) -> None:
    """Start recording the frames both sides write (forgetting any recorded so far)."""
    pair.link_a.written = []
    pair.link_b.written = []


def frames(link: ChannelEndpoint, layer: type[Packet] | None = None) -> list[Packet]:
    """The recorded frames of ``link``, decoded, optionally only those having ``layer``."""
    out = [Ether(f) for f in link.written or []]
    return [f for f in out if layer is None or f.haslayer(layer)]


def udp_frames(link: ChannelEndpoint, dport: int | None = None) -> list[Packet]:
    """Recorded frames carrying UDP (first fragments included), optionally to ``dport``."""
    return [f for f in frames(link, UDP) if dport is None or f[UDP].dport == dport]


def inject(link: ChannelEndpoint, pkt: Packet | bytes) -> None:
    """Hand a frame to ``link``'s stack as if it came off the wire."""
    link.inject(bytes(pkt))


def a_to_b(pair: StackPair) -> Packet:
    """An Ethernet header from a's MAC to b's, for frames injected into b."""
    return Ether(src=mac_text(pair.link_a.link_address), dst=mac_text(pair.link_b.link_address))


def b_to_a(pair: StackPair) -> Packet:
    return Ether(src=mac_text(pair.link_b.link_address), dst=mac_text(pair.link_a.link_address))
