# SPDX-License-Identifier: MIT
"""Ethernet framing shared by the link endpoints that carry Ethernet II frames."""

from __future__ import annotations

from ustack.buffer import PacketBuffer
from ustack.contracts import NetworkDispatcher
from ustack.stats import Stats
from ustack.wire import ethernet
from ustack.wire.errors import ParseError
from ustack.wire.types import Buffer

HEADER_LEN = ethernet.HEADER_LEN


def push_header(pkt: PacketBuffer, src: bytes) -> None:
    """Prepend the Ethernet header for an outbound packet (``dst_link`` is resolved)."""
    ethernet.HEADER.pack_into(pkt.prepend(HEADER_LEN), 0, pkt.dst_link, src,
                              pkt.network_protocol)


def frame_bytes(pkt: PacketBuffer, src: bytes) -> bytes:
    """The whole frame of an outbound packet whose Ethernet header is not yet pushed."""
    return ethernet.build(pkt.dst_link, src, pkt.network_protocol) + pkt.to_bytes()


def deliver_frame(frame: Buffer, own: bytes, dispatcher: NetworkDispatcher | None,
                  stats: Stats, promiscuous: bool = False,
                  checksum_verified: bool = False) -> PacketBuffer | None:
    """Parse an inbound frame and hand it up; frames for other stations are filtered.

    ``checksum_verified`` marks this one frame's transport checksum as already
    checked (per-packet RX offload, e.g. a tap's virtio NEEDS_CSUM/DATA_VALID).
    """
    if dispatcher is None:
        return None
    try:
        header = ethernet.parse(frame)
    except ParseError as err:
        stats.drop("link", err.reason)
        return None
    dst = header.dst
    if dst != own and not dst[0] & 1 and not promiscuous:
        stats.count("link.other_host")
        return None
    pkt = PacketBuffer(0, frame)
    pkt.pull(header.length)
    pkt.src_link = header.src
    pkt.dst_link = dst
    pkt.link_multicast = bool(dst[0] & 1)
    pkt.checksum_verified = checksum_verified
    dispatcher.deliver_network_packet(header.ethertype, pkt)
    return pkt
