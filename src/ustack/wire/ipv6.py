# SPDX-License-Identifier: MIT
"""IPv6 fixed header and extension headers (RFC 8200 sections 3-4)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import IPProto
from ustack.wire.types import Buffer

HEADER = struct.Struct("!IHBB16s16s")
HEADER_LEN = HEADER.size  # 40
FRAGMENT = struct.Struct("!BBHI")
FRAGMENT_LEN = FRAGMENT.size  # 8

ANY = bytes(16)
LOOPBACK = bytes(15) + b"\x01"
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
LINK_LOCAL_PREFIX = bytes.fromhex("fe80000000000000")

EXTENSION_HEADERS = frozenset(
    {IPProto.HOPOPT, IPProto.IPV6_ROUTE, IPProto.IPV6_FRAG, IPProto.IPV6_OPTS})

# RFC 4443 section 3.4 Parameter Problem codes.
PP_ERRONEOUS_FIELD = 0
PP_UNRECOGNIZED_NEXT_HEADER = 1
PP_UNRECOGNIZED_OPTION = 2


class IPv6Header(NamedTuple):
    traffic_class: int
    flow_label: int
    payload_length: int
    next_header: int
    hop_limit: int
    src: bytes
    dst: bytes


class FragmentInfo(NamedTuple):
    header_offset: int  # where the fragment header starts in the packet
    next_header: int  # the protocol of the fragmentable part
    offset: int  # in bytes
    more: bool
    ident: int


class ParameterProblem(NamedTuple):
    """An ICMPv6 Parameter Problem to send (RFC 4443 3.4) and whether to send it."""

    code: int
    pointer: int
    send: bool


class Extensions(NamedTuple):
    """Result of walking the extension header chain up to the upper layer."""

    protocol: int  # the upper-layer protocol (or 59 / an unknown number)
    offset: int  # where the upper-layer header starts
    pointer: int  # offset of the field that named ``protocol`` (for ICMP pointers)
    fragment: FragmentInfo | None
    problem: ParameterProblem | None


def parse(data: Buffer) -> IPv6Header:
    """Check and parse the fixed header; trailing link padding is allowed."""
    if len(data) < HEADER_LEN:
        raise ParseError(DropReason.TRUNCATED, "ipv6 header")
    vtf, plen, nxt, hlim, src, dst = HEADER.unpack_from(data)
    if vtf >> 28 != 6:
        raise ParseError(DropReason.BAD_VERSION, f"ipv6 version {vtf >> 28}")
    if HEADER_LEN + plen > len(data) or (plen == 0 and nxt != IPProto.HOPOPT):
        raise ParseError(DropReason.BAD_LENGTH, f"payload length {plen} of {len(data)}")
    if plen == 0:  # a jumbogram (RFC 2675); links here never carry one
        raise ParseError(DropReason.BAD_LENGTH, "jumbogram")
    return IPv6Header((vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, nxt, hlim, src, dst)


def _check_options(data: Buffer, start: int, end: int,
                   multicast_dst: bool) -> ParameterProblem | None:
    """Hop-by-hop / destination options (RFC 8200 4.2); unknown types act by their top bits."""
    offset = start
    while offset < end:
        kind = data[offset]
        if kind == 0:  # Pad1
            offset += 1
            continue
        if offset + 2 > end or offset + 2 + data[offset + 1] > end:
            raise ParseError(DropReason.BAD_OPTION, "ipv6 option overruns its header")
        if kind not in (1, 5):  # PadN, Router Alert (RFC 2711) are understood
            action = kind >> 6
            if action == 0:
                pass
            elif action == 1:
                raise ParseError(DropReason.BAD_OPTION, f"ipv6 option {kind:#x}: discard")
            else:
                send = action == 2 or not multicast_dst
                return ParameterProblem(PP_UNRECOGNIZED_OPTION, offset, send)
        offset += 2 + data[offset + 1]
    return None


def walk_extensions(data: Buffer, next_header: int, start: int = HEADER_LEN,
                    end: int | None = None, multicast_dst: bool = False,
                    first: bool = True) -> Extensions:
    """Walk hop-by-hop, routing, fragment and destination-options headers.

    Stops at the first header that is not one of those, or at a fragment header
    (the rest is reassembled first). ``first`` says the chain starts right after
    the fixed header (False when walking on after reassembly). Malformed chains
    raise :class:`ParseError`; conditions that call for an ICMPv6 Parameter
    Problem come back in ``problem``.
    """
    end = len(data) if end is None else end
    offset = start
    pointer = 6  # the Next Header field of the fixed header
    while next_header in EXTENSION_HEADERS:
        if next_header == IPProto.HOPOPT and not (first and offset == start):
            # RFC 8200 4.1: hop-by-hop options only directly after the fixed header.
            problem = ParameterProblem(PP_UNRECOGNIZED_NEXT_HEADER, pointer, True)
            return Extensions(next_header, offset, pointer, None, problem)
        if offset + 8 > end:
            raise ParseError(DropReason.BAD_EXTENSION_HEADER, "truncated extension header")
        if next_header == IPProto.IPV6_FRAG:
            nxt, _res, off_m, ident = FRAGMENT.unpack_from(data, offset)
            info = FragmentInfo(offset, nxt, off_m & 0xFFF8, bool(off_m & 1), ident)
            return Extensions(next_header, offset, pointer, info, None)
        length = (data[offset + 1] + 1) * 8
        if offset + length > end:
            raise ParseError(DropReason.BAD_EXTENSION_HEADER, "extension header overruns")
        if next_header == IPProto.IPV6_ROUTE:
            if data[offset + 3] != 0:  # segments left: we are not a router (RFC 8200 4.4)
                problem = ParameterProblem(PP_ERRONEOUS_FIELD, offset + 2, True)
                return Extensions(next_header, offset, pointer, None, problem)
        else:
            bad_option = _check_options(data, offset + 2, offset + length, multicast_dst)
            if bad_option is not None:
                return Extensions(next_header, offset, pointer, None, bad_option)
        pointer = offset
        next_header = data[offset]
        offset += length
    return Extensions(next_header, offset, pointer, None, None)


def upper_layer(data: Buffer, next_header: int, offset: int = HEADER_LEN) -> tuple[int, int]:
    """(protocol, offset) of the upper layer, skipping extension headers by length alone.

    No option is interpreted (as Linux's ipv6_skip_exthdr): this is for deciding
    whether a packet is an ICMPv6 error, never to be answered by one (RFC 4443
    2.4 (e.1)). The offset is -1 when the chain is cut short or a fragment header
    with a non-zero offset hides the upper layer.
    """
    while next_header in EXTENSION_HEADERS:
        if offset + 8 > len(data):
            return next_header, -1
        if next_header == IPProto.IPV6_FRAG:
            if FRAGMENT.unpack_from(data, offset)[2] & 0xFFF8:
                return next_header, -1
            length = FRAGMENT_LEN
        else:
            length = (data[offset + 1] + 1) * 8
        next_header = data[offset]
        offset += length
    return next_header, offset


def build_into(buf: Buffer, offset: int, *, payload_length: int, next_header: int,
               src: bytes, dst: bytes, hop_limit: int = 64, traffic_class: int = 0,
               flow_label: int = 0) -> None:
    vtf = (6 << 28) | (traffic_class << 20) | (flow_label & 0xFFFFF)
    HEADER.pack_into(buf, offset, vtf, payload_length, next_header,
                     hop_limit, src, dst)


def build(**fields: int | bytes) -> bytes:
    buf = bytearray(HEADER_LEN)
    build_into(buf, 0, **fields)  # type: ignore[arg-type]
    return bytes(buf)


def build_fragment_header(next_header: int, offset: int, more: bool, ident: int) -> bytes:
    return FRAGMENT.pack(next_header, 0, (offset & 0xFFF8) | int(more), ident)


def is_multicast(addr: bytes) -> bool:
    return addr[0] == 0xFF


def is_link_local(addr: bytes) -> bool:
    return addr[0] == 0xFE and (addr[1] & 0xC0) == 0x80


def solicited_node(addr: bytes) -> bytes:
    """RFC 4291 2.7.1: ff02::1:ffXX:XXXX from the low 24 bits."""
    return bytes.fromhex("ff0200000000000000000001ff") + bytes(addr[13:16])


def link_local_from_mac(mac: bytes) -> bytes:
    """RFC 4291 appendix A / RFC 2464 section 4: modified EUI-64."""
    return LINK_LOCAL_PREFIX + eui64(mac)


def eui64(mac: bytes) -> bytes:
    return bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))
