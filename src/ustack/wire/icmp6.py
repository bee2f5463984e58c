# SPDX-License-Identifier: MIT
"""ICMPv6 (RFC 4443): header, echo and error messages; NDP lives in :mod:`ustack.wire.ndp`."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ustack.wire import checksum
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import IPProto
from ustack.wire.types import Buffer

HEADER = struct.Struct("!BBHI")
HEADER_LEN = HEADER.size  # 8
ECHO = struct.Struct("!HH")

DEST_UNREACHABLE = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED = 3
PARAMETER_PROBLEM = 4
ECHO_REQUEST = 128
ECHO_REPLY = 129
MLD_QUERY = 130
MLD_REPORT = 131
MLD_DONE = 132
ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
NEIGHBOR_SOLICITATION = 135
NEIGHBOR_ADVERTISEMENT = 136
REDIRECT = 137
MLDV2_REPORT = 143

# Destination Unreachable codes (RFC 4443 3.1).
NO_ROUTE = 0
ADMIN_PROHIBITED = 1
BEYOND_SCOPE = 2
ADDRESS_UNREACHABLE = 3
PORT_UNREACHABLE = 4

#: The largest ICMPv6 error packet, so it fits the minimum MTU (RFC 4443 2.4 (c)).
MIN_MTU = 1280


class ICMPv6Header(NamedTuple):
    type: int
    code: int
    rest: int  # echo: ident<<16|seq; packet-too-big: MTU; param-problem: pointer

    @property
    def is_error(self) -> bool:
        return self.type < 128  # RFC 4443 2.1


def parse(data: Buffer, src: bytes, dst: bytes, verify_checksum: bool = True) -> ICMPv6Header:
    if len(data) < HEADER_LEN:
        raise ParseError(DropReason.TRUNCATED, "icmpv6 header")
    if verify_checksum:
        initial = checksum.pseudo_header_sum(src, dst, IPProto.ICMPV6, len(data))
        if not checksum.verify(data, initial):
            raise ParseError(DropReason.BAD_CHECKSUM, "icmpv6")
    kind, code, _csum, rest = HEADER.unpack_from(data)
    return ICMPv6Header(kind, code, rest)


def build(kind: int, code: int, rest: int, body: Buffer, src: bytes, dst: bytes) -> bytes:
    """A complete ICMPv6 message with its checksum over the pseudo-header."""
    buf = bytearray(HEADER_LEN + len(body))
    HEADER.pack_into(buf, 0, kind, code, 0, rest)
    buf[HEADER_LEN:] = body
    initial = checksum.pseudo_header_sum(src, dst, IPProto.ICMPV6, len(buf))
    struct.pack_into("!H", buf, 2, checksum.checksum(buf, initial))
    return bytes(buf)
