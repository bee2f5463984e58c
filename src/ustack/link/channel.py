# SPDX-License-Identifier: MIT
"""An in-memory Ethernet link between two endpoints, to connect two stacks in one process.

Frames are handed over on the clock (``call_soon``, or after ``latency``), never
by recursion, so a test sees the same event order every run.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from ustack.buffer import PacketBuffer
from ustack.clock import Clock
from ustack.contracts import LinkCapabilities, NetworkDispatcher
from ustack.link.base import EthernetLink
from ustack.link.ethernet import deliver_frame, push_header
from ustack.stats import Stats

_mac_counter = itertools.count(1)


def make_mac(index: int | None = None) -> bytes:
    """A locally administered unicast MAC (02:...)."""
    n = next(_mac_counter) if index is None else index
    return bytes((0x02, 0x00, 0x00, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF))


class ChannelEndpoint(EthernetLink):
    def __init__(self, clock: Clock, mac: bytes, mtu: int = 1500, latency: float = 0.0,
                 capabilities: LinkCapabilities = LinkCapabilities.RESOLUTION_REQUIRED) -> None:
        self._clock = clock
        self._mac = mac
        self._mtu = mtu
        self.latency = latency
        self._caps = capabilities | LinkCapabilities.RESOLUTION_REQUIRED
        self._dispatcher: NetworkDispatcher | None = None
        self.peer: ChannelEndpoint | None = None
        self.stats = Stats()
        self.up = True
        #: every frame written, when a test wants to look (None: not recorded)
        self.written: list[bytes] | None = None

    @classmethod
    def pair(cls, clock: Clock, mtu: int = 1500, latency: float = 0.0,
             capabilities: LinkCapabilities = LinkCapabilities.RESOLUTION_REQUIRED,
             ) -> tuple[ChannelEndpoint, ChannelEndpoint]:
        a = cls(clock, make_mac(), mtu, latency, capabilities)
        b = cls(clock, make_mac(), mtu, latency, capabilities)
        a.peer, b.peer = b, a
        return a, b

    def write_packets(self, pkts: Sequence[PacketBuffer]) -> int:
        peer = self.peer
        for pkt in pkts:
            push_header(pkt, self._mac)
            frame = pkt.to_bytes()
            if self.written is not None:
                self.written.append(frame)
            self.stats.count("tx_frames")
            if peer is None or not self.up:
                continue
            if self.latency:
                self._clock.call_later(self.latency, peer.inject, frame)
            else:
                self._clock.call_soon(peer.inject, frame)
        return len(pkts)

    def inject(self, frame: bytes) -> None:
        """Receive a frame as if it came off the wire (tests use this for raw input)."""
        self.stats.count("rx_frames")
        deliver_frame(frame, self._mac, self._dispatcher, self.stats)

    def close(self) -> None:
        self._dispatcher = None
        self.up = False
