# SPDX-License-Identifier: MIT
"""TCP segments: inbound ones as parsed records, outbound ones built into packet buffers."""

from __future__ import annotations

import struct

from ustack.buffer import PacketBuffer
from ustack.route import Route
from ustack.wire import checksum
from ustack.wire import tcp as wire
from ustack.wire.proto import IPProto
from ustack.wire.tcp import ACK, FIN, PSH, RST, SYN, TCPHeader, TCPOptions

_CHECKSUM = struct.Struct("!H")
_TCP = IPProto.TCP  # (read per segment: an enum member lookup costs ~90 ns on 3.11)
FLAG_NAMES = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."))


def flag_string(flags: int) -> str:
    return "".join(c for bit, c in FLAG_NAMES if flags & bit) or "-"


class Segment:
    """One inbound segment. ``seq``/``ack`` are the raw 32-bit fields."""

    __slots__ = ("ack", "data", "flags", "options", "seq", "window")

    def __init__(self, seq: int, ack: int, flags: int, window: int, options: TCPOptions,
                 data: memoryview) -> None:
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.options = options
        self.data = data

    @classmethod
    def from_packet(cls, pkt: PacketBuffer) -> Segment:
        """Build from a packet whose header the protocol parsed (``pkt.transport_header``)."""
        hdr: TCPHeader = pkt.transport_header  # type: ignore[assignment]
        body = pkt.body()
        hlen = hdr.header_length
        opts = wire.parse_options(body, wire.MIN_HEADER_LEN, hlen) if hlen > 20 \
            else wire.NO_OPTIONS
        return cls(hdr.seq, hdr.ack, hdr.flags, hdr.window, opts, body[hlen:])

    @property
    def length(self) -> int:
        """Sequence space consumed: data plus SYN and FIN (RFC 9293 3.4 SEG.LEN)."""
        return len(self.data) + (self.flags & SYN != 0) + (self.flags & FIN != 0)

    def __repr__(self) -> str:
        return (f"<seg {flag_string(self.flags)} seq={self.seq} ack={self.ack} "
                f"win={self.window} len={len(self.data)}>")


def build(route: Route, sport: int, dport: int, seq: int, ack: int, flags: int,
          window: int, options: bytes = b"", payload: memoryview | bytes = b"",
          gso_size: int = 0) -> PacketBuffer:
    """A segment ready for ``route.write_packet``; the checksum is complete, or left
    partial for the link when the route offloads it."""
    hlen = wire.MIN_HEADER_LEN + len(options)
    pkt = PacketBuffer(route.max_header_length + hlen, payload)
    header = pkt.prepend(hlen)
    total = hlen + len(payload)
    # the pseudo-header (RFC 9293 3.1): the route's addresses, summed once per route
    initial = checksum.combine(route.address_sum, _TCP + (total >> 16) + (total & 0xFFFF))
    if route.checksum_offload:
        value = initial  # the link finishes it (the virtio NEEDS_CSUM convention)
        pkt.csum_partial = (total, 16)
    else:
        value = 0
    wire.HEADER.pack_into(header, 0, sport, dport, seq, ack, (hlen // 4) << 4, flags, window,
                          value, 0)
    if options:
        header[wire.MIN_HEADER_LEN:] = options
    if not route.checksum_offload:
        value = checksum.checksum(payload, checksum.ones_sum(header, initial))
        _CHECKSUM.pack_into(header, 16, value)
    if gso_size and len(payload) > gso_size:
        pkt.gso_size = gso_size
    return pkt


__all__ = ["ACK", "FIN", "PSH", "RST", "SYN", "Segment", "build", "flag_string"]
