# SPDX-License-Identifier: MIT
"""A link wrapper that records every frame, both directions, into a classic pcap file.

Wrap any link endpoint: outbound packets are recorded as the Ethernet frame
the inner link will put on the wire, then passed on unchanged; inbound frames
are recorded as received (``pkt.frame()``), then handed to the NIC. Links
without an Ethernet header (LOOPBACK, or no link header at all) are recorded
as LINKTYPE_RAW (bare IPv4/IPv6).

A packet whose transport checksum is left for the link (``csum_partial``, TX
offload) is recorded with the checksum finished, as the kernel would finish it
(``skb_checksum_help``: a result of 0 is sent as 0xFFFF), without touching the
packet that goes on. TCP super-packets (GSO) are recorded as one big frame, as
tcpdump on a GSO-capable device shows them.

Timestamps come from the stack's clock. A virtual clock's time is used as it
is; for other clocks (whose ``now()`` is monotonic, not wall time) an offset to
the wall clock is taken once, so tshark shows real dates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import BinaryIO

from ustack.buffer import PacketBuffer
from ustack.clock import Clock, VirtualClock
from ustack.contracts import LinkCapabilities, LinkEndpoint, NetworkDispatcher
from ustack.link.base import WrappingLink
from ustack.stats import Stats
from ustack.wire import checksum, ethernet
from ustack.wire.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter


def finished_frame(pkt: PacketBuffer, link_header: bytes = b"") -> bytearray:
    """``link_header`` + the packet's bytes, its partial checksum (if any) completed.

    Does not change ``pkt`` (compare :func:`ustack.buffer.finish_partial_checksum`).
    """
    out = bytearray(link_header)
    out += pkt.headers()
    out += pkt.body()
    partial = pkt.csum_partial
    if partial is not None:
        transport_len, field = partial
        start = len(out) - transport_len
        end = start + field + 2
        if start >= len(link_header) and end <= len(out):
            value = checksum.checksum(memoryview(out)[start:]) or 0xFFFF
            out[end - 2:end] = value.to_bytes(2, "big")
    return out


class SnifferEndpoint(WrappingLink):
    """Records frames into ``stream`` (a pcap file), then passes them on to/from ``inner``."""

    def __init__(self, inner: LinkEndpoint, clock: Clock, stream: BinaryIO, *,
                 snaplen: int = 262144, offset: float | None = None,
                 close_stream: bool = True) -> None:
        self.inner = inner
        self._clock = clock
        caps = inner.capabilities
        self.ethernet = not (caps & LinkCapabilities.LOOPBACK) and inner.max_header_length > 0
        self.linktype = LINKTYPE_ETHERNET if self.ethernet else LINKTYPE_RAW
        self._writer = PcapWriter(stream, self.linktype, snaplen)
        self._close_stream = close_stream
        if offset is None:
            offset = 0.0 if isinstance(clock, VirtualClock) else time.time() - clock.now()
        self._offset = offset
        self._dispatcher: NetworkDispatcher | None = None
        self.stats = Stats()

    @classmethod
    def to_file(cls, inner: LinkEndpoint, clock: Clock, path: str, *,
                snaplen: int = 262144, offset: float | None = None) -> SnifferEndpoint:
        """Record into a new file at ``path`` (closed with the endpoint)."""
        return cls(inner, clock, open(path, "wb"), snaplen=snaplen,
                   offset=offset)

    # --- LinkEndpoint, delegated ---------------------------------------------------------------

    def write_packets(self, pkts: Sequence[PacketBuffer]) -> int:
        now = self._clock.now() + self._offset
        write = self._writer.write
        src = self.inner.link_address if self.ethernet else b""
        for pkt in pkts:
            header = (ethernet.build(pkt.dst_link, src, pkt.network_protocol) if self.ethernet
                      else b"")
            if pkt.csum_partial is None:
                write(now, header + pkt.to_bytes())
            else:
                write(now, finished_frame(pkt, header))
        self.stats.counters["sniffer.tx_frames"] += len(pkts)
        return self.inner.write_packets(pkts)

    def close(self) -> None:
        self.inner.close()
        self._dispatcher = None
        if self._close_stream:
            self._writer.close()
        else:
            self._writer.flush()

    def flush(self) -> None:
        self._writer.flush()

    # --- NetworkDispatcher for the inner link --------------------------------------------------

    def deliver_network_packet(self, ethertype: int, pkt: PacketBuffer) -> None:
        self._writer.write(self._clock.now() + self._offset, pkt.frame())
        self.stats.counters["sniffer.rx_frames"] += 1
        dispatcher = self._dispatcher
        if dispatcher is not None:
            dispatcher.deliver_network_packet(ethertype, pkt)
