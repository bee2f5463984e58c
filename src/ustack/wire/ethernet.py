# SPDX-License-Identifier: MIT
"""Ethernet II frames (IEEE 802.3 clause 3.2), skipping one or two 802.1Q tags."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import EtherType
from ustack.wire.types import Buffer

HEADER = struct.Struct("!6s6sH")
HEADER_LEN = HEADER.size  # 14
_TAG = struct.Struct("!HH")  # TCI, inner EtherType
_TAGGED = (EtherType.VLAN, EtherType.QINQ)

BROADCAST = b"\xff" * 6
ZERO = b"\x00" * 6


class EthernetHeader(NamedTuple):
    dst: bytes
    src: bytes
    ethertype: int
    length: int  # header bytes including any VLAN tags


def parse(frame: Buffer) -> EthernetHeader:
    """Parse the header; an 802.1Q/802.1ad tag (or two) is skipped, not interpreted."""
    if len(frame) < HEADER_LEN:
        raise ParseError(DropReason.TRUNCATED, "ethernet header")
    dst, src, ethertype = HEADER.unpack_from(frame)
    offset = HEADER_LEN
    while ethertype in _TAGGED and offset < HEADER_LEN + 8:
        if len(frame) < offset + _TAG.size:
            raise ParseError(DropReason.TRUNCATED, "vlan tag")
        ethertype = _TAG.unpack_from(frame, offset)[1]
        offset += _TAG.size
    return EthernetHeader(dst, src, ethertype, offset)


def build_into(buf: Buffer, offset: int, dst: bytes, src: bytes, ethertype: int) -> None:
    """Write a 14-byte header at ``offset`` of a writable buffer."""
    HEADER.pack_into(buf, offset, dst, src, ethertype)


def build(dst: bytes, src: bytes, ethertype: int) -> bytes:
    return HEADER.pack(dst, src, ethertype)


def is_multicast(mac: bytes) -> bool:
    """The I/G bit (IEEE 802 section 8.2): group addresses include broadcast."""
    return bool(mac[0] & 1)


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def ipv4_multicast_mac(group: bytes) -> bytes:
    """RFC 1112 section 6.4: 01:00:5e plus the low 23 bits of the group."""
    return bytes((0x01, 0x00, 0x5E, group[1] & 0x7F, group[2], group[3]))


def ipv6_multicast_mac(group: bytes) -> bytes:
    """RFC 2464 section 7: 33:33 plus the last four bytes of the group."""
    return b"\x33\x33" + bytes(group[12:16])
