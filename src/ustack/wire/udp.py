# SPDX-License-Identifier: MIT
"""UDP header (RFC 768; IPv6 rules from RFC 8200 section 8.1)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ustack.wire import checksum
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import IPProto
from ustack.wire.types import Buffer

HEADER = struct.Struct("!HHHH")
HEADER_LEN = HEADER.size  # 8


class UDPHeader(NamedTuple):
    src_port: int
    dst_port: int
    length: int
    checksum: int


def parse(data: Buffer, src: bytes, dst: bytes, verify_checksum: bool = True) -> UDPHeader:
    """``data`` is the IP payload; the UDP length must fit in it (RFC 768)."""
    if len(data) < HEADER_LEN:
        raise ParseError(DropReason.TRUNCATED, "udp header")
    sport, dport, length, csum = HEADER.unpack_from(data)
    if length < HEADER_LEN or length > len(data):
        raise ParseError(DropReason.BAD_LENGTH, f"udp length {length} of {len(data)}")
    if verify_checksum:
        if csum == 0:
            if len(src) == 16:  # RFC 8200 8.1: a zero UDP checksum is invalid over IPv6
                raise ParseError(DropReason.BAD_CHECKSUM, "udp zero checksum over ipv6")
        else:
            initial = checksum.pseudo_header_sum(src, dst, IPProto.UDP, length)
            if not checksum.verify(memoryview(data)[:length], initial):
                raise ParseError(DropReason.BAD_CHECKSUM, "udp")
    return UDPHeader(sport, dport, length, csum)


def build_header(src_port: int, dst_port: int, payload: Buffer, src: bytes, dst: bytes,
                 with_checksum: bool = True) -> bytes:
    """The 8-byte header for ``payload``, checksummed over the pseudo-header (RFC 768)."""
    length = HEADER_LEN + len(payload)
    if not with_checksum:
        return HEADER.pack(src_port, dst_port, length, 0)
    initial = checksum.pseudo_header_sum(src, dst, IPProto.UDP, length)
    partial = checksum.ones_sum(HEADER.pack(src_port, dst_port, length, 0), initial)
    csum = checksum.checksum(payload, partial) or 0xFFFF  # 0 means "none": send all ones
    return HEADER.pack(src_port, dst_port, length, csum)
