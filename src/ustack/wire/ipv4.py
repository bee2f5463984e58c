# SPDX-License-Identifier: MIT
"""IPv4 header (RFC 791 section 3.1), validated per RFC 1122 section 3.2.1."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ustack.wire import checksum
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.types import Buffer

HEADER = struct.Struct("!BBHHHBBH4s4s")
_CHECKSUM = struct.Struct("!H")
MIN_HEADER_LEN = HEADER.size  # 20
MAX_HEADER_LEN = 60
MAX_PACKET = 65535

FLAG_DF = 0x4000
FLAG_MF = 0x2000
OFFSET_MASK = 0x1FFF

ANY = b"\x00\x00\x00\x00"
BROADCAST = b"\xff\xff\xff\xff"


class IPv4Header(NamedTuple):
    header_length: int
    tos: int
    total_length: int
    ident: int
    dont_fragment: bool
    more_fragments: bool
    fragment_offset: int  # in bytes
    ttl: int
    protocol: int
    src: bytes
    dst: bytes

    @property
    def is_fragment(self) -> bool:
        return self.more_fragments or self.fragment_offset != 0


def parse(data: Buffer, verify_checksum: bool = True, quoted: bool = False) -> IPv4Header:
    """Check and parse; trailing bytes past total_length (link padding) are allowed.

    ``quoted`` parses a header quoted in an ICMP error, which may be truncated: the
    total length is not checked against the bytes present.
    """
    if len(data) < MIN_HEADER_LEN:
        raise ParseError(DropReason.TRUNCATED, "ipv4 header")
    vihl, tos, total, ident, frag, ttl, proto, _csum, src, dst = HEADER.unpack_from(data)
    if vihl >> 4 != 4:
        raise ParseError(DropReason.BAD_VERSION, f"ipv4 version {vihl >> 4}")
    hlen = (vihl & 0x0F) * 4
    if hlen < MIN_HEADER_LEN:
        raise ParseError(DropReason.BAD_HEADER_LENGTH, f"ihl {hlen // 4}")
    if hlen > len(data) or total < hlen or (total > len(data) and not quoted):
        raise ParseError(DropReason.BAD_LENGTH, f"total length {total} of {len(data)}")
    if verify_checksum and not checksum.verify(memoryview(data)[:hlen]):
        raise ParseError(DropReason.BAD_CHECKSUM, "ipv4 header")
    if frag & 0x8000:  # RFC 791: the reserved flag bit must be zero
        raise ParseError(DropReason.BAD_FRAGMENT, "reserved flag set")
    return IPv4Header(
        hlen, tos, total, ident, bool(frag & FLAG_DF), bool(frag & FLAG_MF),
        (frag & OFFSET_MASK) * 8, ttl, proto, src, dst,
    )


def build_into(
    buf: Buffer, offset: int, *, total_length: int, protocol: int, src: bytes, dst: bytes,
    ttl: int = 64, tos: int = 0, ident: int = 0, dont_fragment: bool = False,
    more_fragments: bool = False, fragment_offset: int = 0,
) -> None:
    """Write a 20-byte header (no options) with its checksum at ``offset``."""
    frag = (fragment_offset >> 3) | (FLAG_DF if dont_fragment else 0) | (
        FLAG_MF if more_fragments else 0)
    HEADER.pack_into(buf, offset, 0x45, tos, total_length, ident, frag,
                     ttl, protocol, 0, src, dst)
    csum = checksum.checksum(memoryview(buf)[offset:offset + MIN_HEADER_LEN])
    _CHECKSUM.pack_into(buf, offset + 10, csum)


def build_unfragmented(buf: Buffer, total_length: int, protocol: int, src: bytes, dst: bytes,
                       ttl: int, tos: int, ident: int, dont_fragment: bool) -> None:
    """:func:`build_into` at offset 0 for a packet that is not a fragment, with positional
    arguments: the per-packet path of every transport segment."""
    HEADER.pack_into(buf, 0, 0x45, tos, total_length, ident, FLAG_DF if dont_fragment else 0,
                     ttl, protocol, 0, src, dst)
    _CHECKSUM.pack_into(buf, 10, checksum.checksum(memoryview(buf)[:MIN_HEADER_LEN]))


def build(**fields: int | bytes | bool) -> bytes:
    """A standalone 20-byte header; keyword arguments as for :func:`build_into`."""
    buf = bytearray(MIN_HEADER_LEN)
    build_into(buf, 0, **fields)  # type: ignore[arg-type]
    return bytes(buf)


def is_multicast(addr: bytes) -> bool:
    return 224 <= addr[0] <= 239


def is_loopback(addr: bytes) -> bool:
    return addr[0] == 127


def is_unspecified(addr: bytes) -> bool:
    return addr == ANY
