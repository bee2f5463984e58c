# SPDX-License-Identifier: MIT
"""Neighbor Discovery messages and options (RFC 4861 section 4, RFC 8106 for RDNSS).

The ``parse_*`` functions take the ICMPv6 message (from its type byte on), already
checksum-verified by :func:`ustack.wire.icmp6.parse`.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ustack.wire.errors import DropReason, ParseError
from ustack.wire.icmp6 import HEADER_LEN
from ustack.wire.types import Buffer

OPT_SOURCE_LINK_ADDR = 1
OPT_TARGET_LINK_ADDR = 2
OPT_PREFIX_INFO = 3
OPT_REDIRECTED_HEADER = 4
OPT_MTU = 5
OPT_RDNSS = 25
OPT_DNSSL = 31

NA_ROUTER = 0x80
NA_SOLICITED = 0x40
NA_OVERRIDE = 0x20
RA_MANAGED = 0x80
RA_OTHER = 0x40
PI_ON_LINK = 0x80
PI_AUTONOMOUS = 0x40

_RA = struct.Struct("!BBHII")  # cur hop limit, flags, router lifetime, reachable, retrans
_PREFIX = struct.Struct("!BBIII16s")  # length, flags, valid, preferred, reserved, prefix
_MTU = struct.Struct("!HI")
INFINITE = 0xFFFFFFFF


class PrefixInfo(NamedTuple):
    prefix: bytes
    length: int
    on_link: bool
    autonomous: bool
    valid_lifetime: int
    preferred_lifetime: int


class Options(NamedTuple):
    source_link_addr: bytes | None = None
    target_link_addr: bytes | None = None
    prefixes: tuple[PrefixInfo, ...] = ()
    mtu: int | None = None
    rdnss: tuple[bytes, ...] = ()
    rdnss_lifetime: int = 0
    ignored: int = 0  # well-formed options of a known type with bad contents, skipped


class NeighborSolicitation(NamedTuple):
    target: bytes
    options: Options


class NeighborAdvertisement(NamedTuple):
    router: bool
    solicited: bool
    override: bool
    target: bytes
    options: Options


class RouterAdvertisement(NamedTuple):
    cur_hop_limit: int
    managed: bool
    other: bool
    router_lifetime: int
    reachable_time: int
    retrans_timer: int
    options: Options


def parse_options(data: Buffer, offset: int) -> Options:
    """RFC 4861 4.6: each option's length is in units of 8 bytes and never zero."""
    slla = tlla = None
    mtu = None
    prefixes: list[PrefixInfo] = []
    rdnss: list[bytes] = []
    rdnss_lifetime = 0
    ignored = 0
    end = len(data)
    while offset < end:
        if offset + 2 > end:
            raise ParseError(DropReason.BAD_OPTION, "ndp option header")
        kind, units = data[offset], data[offset + 1]
        length = units * 8
        if length == 0 or offset + length > end:
            raise ParseError(DropReason.BAD_OPTION, f"ndp option {kind} length {units}")
        body = offset + 2
        if kind == OPT_SOURCE_LINK_ADDR and length >= 8:
            slla = bytes(data[body:body + 6])
        elif kind == OPT_TARGET_LINK_ADDR and length >= 8:
            tlla = bytes(data[body:body + 6])
        elif kind == OPT_PREFIX_INFO:
            # RFC 4861 4.6.2: Length 4; a prefix length from 0 to 128. A bad one is
            # skipped, not the whole message (the option's length still walks the chain)
            plen = data[body] if length == 32 else 255
            if plen > 128:
                ignored += 1
            else:
                plen, flags, valid, preferred, _r, prefix = _PREFIX.unpack_from(data, body)
                prefixes.append(PrefixInfo(prefix, plen, bool(flags & PI_ON_LINK),
                                           bool(flags & PI_AUTONOMOUS), valid, preferred))
        elif kind == OPT_MTU and length == 8:
            mtu = _MTU.unpack_from(data, body)[1]
        elif kind == OPT_RDNSS and units >= 3 and units % 2:  # RFC 8106 5.1: 1 + 2/address
            rdnss_lifetime = struct.unpack_from("!I", data, body + 2)[0]
            rdnss.extend(bytes(data[a:a + 16]) for a in range(offset + 8, offset + length, 16))
        offset += length  # unknown options are skipped (RFC 4861 4.6)
    return Options(slla, tlla, tuple(prefixes), mtu, tuple(rdnss), rdnss_lifetime, ignored)


def parse_neighbor_solicitation(msg: Buffer) -> NeighborSolicitation:
    if len(msg) < HEADER_LEN + 16:
        raise ParseError(DropReason.TRUNCATED, "neighbor solicitation")
    return NeighborSolicitation(bytes(msg[8:24]), parse_options(msg, 24))


def parse_neighbor_advertisement(msg: Buffer) -> NeighborAdvertisement:
    if len(msg) < HEADER_LEN + 16:
        raise ParseError(DropReason.TRUNCATED, "neighbor advertisement")
    flags = msg[4]
    return NeighborAdvertisement(bool(flags & NA_ROUTER), bool(flags & NA_SOLICITED),
                                 bool(flags & NA_OVERRIDE), bytes(msg[8:24]),
                                 parse_options(msg, 24))


def parse_router_advertisement(msg: Buffer) -> RouterAdvertisement:
    if len(msg) < 16:
        raise ParseError(DropReason.TRUNCATED, "router advertisement")
    hop_limit, flags, lifetime, reachable, retrans = _RA.unpack_from(msg, 4)
    return RouterAdvertisement(hop_limit, bool(flags & RA_MANAGED), bool(flags & RA_OTHER),
                               lifetime, reachable, retrans, parse_options(msg, 16))


def parse_router_solicitation(msg: Buffer) -> Options:
    if len(msg) < HEADER_LEN:
        raise ParseError(DropReason.TRUNCATED, "router solicitation")
    return parse_options(msg, 8)


# --- building: bodies that follow the 4-byte ICMPv6 type/code/checksum ------------------

def link_addr_option(kind: int, mac: bytes) -> bytes:
    return bytes((kind, 1)) + mac


def prefix_option(info: PrefixInfo) -> bytes:
    flags = (PI_ON_LINK if info.on_link else 0) | (PI_AUTONOMOUS if info.autonomous else 0)
    return bytes((OPT_PREFIX_INFO, 4)) + _PREFIX.pack(
        info.length, flags, info.valid_lifetime, info.preferred_lifetime, 0, info.prefix)


def mtu_option(mtu: int) -> bytes:
    return bytes((OPT_MTU, 1)) + _MTU.pack(0, mtu)


def rdnss_option(servers: tuple[bytes, ...], lifetime: int) -> bytes:
    return bytes((OPT_RDNSS, 1 + 2 * len(servers), 0, 0)) + struct.pack("!I", lifetime) + b"".join(
        servers)


def neighbor_solicitation_body(target: bytes, source_mac: bytes | None) -> bytes:
    """Everything after the 4-byte ICMP rest field (which is reserved, zero)."""
    opts = link_addr_option(OPT_SOURCE_LINK_ADDR, source_mac) if source_mac else b""
    return target + opts


def neighbor_advertisement_rest(router: bool, solicited: bool, override: bool) -> int:
    return ((NA_ROUTER if router else 0) | (NA_SOLICITED if solicited else 0)
            | (NA_OVERRIDE if override else 0)) << 24


def router_advertisement_rest(hop_limit: int, managed: bool, other: bool,
                              lifetime: int) -> int:
    flags = (RA_MANAGED if managed else 0) | (RA_OTHER if other else 0)
    return (hop_limit << 24) | (flags << 16) | lifetime
