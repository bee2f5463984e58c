# SPDX-License-Identifier: MIT
"""The loopback link: what is written comes back in, with no link header and no resolution."""

from __future__ import annotations

from collections.abc import Sequence

from ustack.buffer import PacketBuffer
from ustack.clock import Clock
from ustack.contracts import LinkCapabilities, NetworkDispatcher

LOOPBACK_MTU = 65536


class LoopbackEndpoint:
    def __init__(self, clock: Clock, mtu: int = LOOPBACK_MTU) -> None:
        self._clock = clock
        self._mtu = mtu
        self._dispatcher: NetworkDispatcher | None = None

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def capabilities(self) -> LinkCapabilities:
        return (LinkCapabilities.LOOPBACK | LinkCapabilities.RX_CHECKSUM_OFFLOAD
                | LinkCapabilities.TX_CHECKSUM_OFFLOAD)

    @property
    def max_header_length(self) -> int:
        return 0

    @property
    def link_address(self) -> bytes:
        return b""

    def attach(self, dispatcher: NetworkDispatcher | None) -> None:
        self._dispatcher = dispatcher

    def is_attached(self) -> bool:
        return self._dispatcher is not None

    def write_packets(self, pkts: Sequence[PacketBuffer]) -> int:
        for pkt in pkts:
            self._clock.call_soon(self._deliver, pkt.network_protocol, pkt.to_bytes())
        return len(pkts)

    def _deliver(self, ethertype: int, data: bytes) -> None:
        if self._dispatcher is not None:
            self._dispatcher.deliver_network_packet(ethertype, PacketBuffer(0, data))

    def close(self) -> None:
        self._dispatcher = None
