# SPDX-License-Identifier: MIT
"""ICMPv4 (RFC 792): echo, destination unreachable, time exceeded."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ustack.wire import checksum
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.types import Buffer

HEADER = struct.Struct("!BBHHH")  # type, code, checksum, and the 4-byte "rest" as two halves
HEADER_LEN = HEADER.size  # 8

ECHO_REPLY = 0
DEST_UNREACHABLE = 3
SOURCE_QUENCH = 4
REDIRECT = 5
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAMETER_PROBLEM = 12

# Destination Unreachable codes (RFC 792, RFC 1122 3.2.2.1, RFC 1812 5.2.7.1).
NET_UNREACHABLE = 0
HOST_UNREACHABLE = 1
PROTOCOL_UNREACHABLE = 2
PORT_UNREACHABLE = 3
FRAGMENTATION_NEEDED = 4
ADMIN_PROHIBITED = 13

ERROR_TYPES = frozenset({DEST_UNREACHABLE, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED,
                         PARAMETER_PROBLEM})


class ICMPv4Header(NamedTuple):
    type: int
    code: int
    rest_hi: int  # echo: identifier; frag-needed: unused
    rest_lo: int  # echo: sequence; frag-needed: next-hop MTU (RFC 1191)


def parse(data: Buffer, verify_checksum: bool = True) -> ICMPv4Header:
    if len(data) < HEADER_LEN:
        raise ParseError(DropReason.TRUNCATED, "icmp header")
    if verify_checksum and not checksum.verify(data):
        raise ParseError(DropReason.BAD_CHECKSUM, "icmp")
    kind, code, _csum, hi, lo = HEADER.unpack_from(data)
    return ICMPv4Header(kind, code, hi, lo)


def build(kind: int, code: int, rest_hi: int, rest_lo: int, body: Buffer = b"") -> bytes:
    buf = bytearray(HEADER_LEN + len(body))
    HEADER.pack_into(buf, 0, kind, code, 0, rest_hi, rest_lo)
    buf[HEADER_LEN:] = body
    struct.pack_into("!H", buf, 2, checksum.checksum(buf))
    return bytes(buf)
