# SPDX-License-Identifier: MIT
"""PacketBuffer: one packet on its way through the layers.

Outbound, a packet is built back to front: the transport layer creates it with
``headroom`` bytes reserved for every header below it and a payload held by
reference; each layer then :meth:`~PacketBuffer.prepend`\\ s its header into the
headroom. The payload is never copied: a link writes ``(headers, payload)`` with
one ``writev``.

The payload must not change once handed to the layers below (links may hold a
packet to delay or retransmit it): pass ``bytes`` or views of immutable memory.

Inbound, a packet wraps a received frame; each layer :meth:`~PacketBuffer.pull`\\ s
its header off the front and records what it learned (addresses, protocol) in
the metadata slots for the layers above.
"""

from __future__ import annotations

from ustack.wire import checksum
from ustack.wire.types import Buffer

EMPTY = memoryview(b"")


class PacketBuffer:
    __slots__ = (
        "_headers", "_head", "payload", "_offset", "_end",
        # metadata filled in by the layers
        "nic", "network_protocol", "transport_protocol", "src_link", "dst_link",
        "src_addr", "dst_addr", "ttl", "tos", "network_offset", "transport_offset",
        "checksum_verified", "csum_partial", "gso_size", "link_multicast", "transport_header",
    )

    def __init__(self, headroom: int = 0, payload: Buffer = EMPTY) -> None:
        self._headers = bytearray(headroom)
        self._head = headroom
        self.payload: Buffer = payload
        self._offset = 0
        self._end = len(payload)
        self.nic: object = None
        self.network_protocol = 0
        self.transport_protocol = 0
        self.src_link = b""
        self.dst_link = b""
        self.src_addr = b""
        self.dst_addr = b""
        self.ttl = 0
        self.tos = 0
        self.network_offset = 0
        self.transport_offset = 0
        #: inbound: the link already verified transport checksums (RX offload)
        self.checksum_verified = False
        #: outbound: (transport length, checksum field offset) when the link must finish
        #: a partial checksum (TX offload); None when the checksum is complete
        self.csum_partial: tuple[int, int] | None = None
        #: outbound: segment size for a GSO super-packet, 0 when not one
        self.gso_size = 0
        self.link_multicast = False
        #: inbound: the transport header as parsed by the protocol before demux
        self.transport_header: object = None

    # --- outbound -----------------------------------------------------------------------

    def prepend(self, length: int) -> memoryview:
        """Reserve ``length`` bytes in front of what is built so far and return them."""
        head = self._head - length
        if head < 0:
            grown = bytearray(-head + 64) + self._headers
            head += len(grown) - len(self._headers)
            self._head += len(grown) - len(self._headers)
            self._headers = grown
        self._head = head
        return memoryview(self._headers)[head:head + length]

    def headers(self) -> memoryview:
        """The headers prepended so far, outermost first."""
        return memoryview(self._headers)[self._head:]

    @property
    def headers_length(self) -> int:
        return len(self._headers) - self._head

    @property
    def payload_length(self) -> int:
        return self._end - self._offset

    def __len__(self) -> int:
        return len(self._headers) - self._head + self._end - self._offset

    def body(self) -> memoryview:
        """The unread payload (inbound) or the payload not yet wrapped (outbound)."""
        return memoryview(self.payload)[self._offset:self._end]

    def views(self) -> tuple[memoryview, memoryview]:
        """(headers, payload) for a scatter-gather write."""
        return self.headers(), self.body()

    def to_bytes(self) -> bytes:
        return bytes(self.headers()) + bytes(self.body())

    # --- inbound ------------------------------------------------------------------------

    @property
    def offset(self) -> int:
        """Bytes of the payload consumed so far (the start of the current layer)."""
        return self._offset

    def pull(self, length: int) -> None:
        """Consume ``length`` bytes of the payload (a header that has been parsed)."""
        self._offset += length

    def frame(self) -> memoryview:
        """Inbound: the whole received frame, link header included, up to the trimmed end."""
        return memoryview(self.payload)[:self._end]

    def trim(self, length: int) -> None:
        """Keep only ``length`` bytes after the cursor (drop link padding)."""
        self._end = self._offset + length

    def clone(self) -> PacketBuffer:
        """A shallow copy sharing the payload, for delivery to more than one endpoint."""
        other = PacketBuffer(0, self.payload)
        for name in PacketBuffer.__slots__:
            setattr(other, name, getattr(self, name))
        other._headers = bytearray(self.headers())
        other._head = 0
        return other


def finish_partial_checksum(pkt: PacketBuffer) -> bytes:
    """The packet's bytes with a partial (offloaded) transport checksum completed.

    Used where a packet cannot reach a link that finishes checksums: fragmentation,
    and links without TX offload. The checksum field holds the pseudo-header sum
    (the virtio convention), so summing the transport bytes completes it.
    """
    data = pkt.to_bytes()
    if pkt.csum_partial is None:
        return data
    transport_len, field = pkt.csum_partial
    out = bytearray(data)
    start = len(out) - transport_len
    value = checksum.checksum(memoryview(out)[start:])
    if value == 0 and field == 6:  # UDP: a computed zero goes out as all ones (RFC 768)
        value = 0xFFFF
    out[start + field:start + field + 2] = value.to_bytes(2, "big")
    pkt.csum_partial = None
    return bytes(out)
