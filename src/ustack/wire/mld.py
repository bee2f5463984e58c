# SPDX-License-Identifier: MIT
"""MLD messages: MLDv1 (RFC 2710 section 3) and MLDv2 (RFC 3810 5.1/5.2), ICMPv6 types
130, 131, 132 and 143, with the ICMPv6 checksum over the pseudo-header.

What ustack sends travels with hop limit 1, from a link-local source, behind a
hop-by-hop header carrying the Router Alert option with value 0 (RFC 2711;
RFC 3810 5).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from ustack.wire import icmp6 as icmp_wire
from ustack.wire import ipv6 as ip_wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import IPProto
from ustack.wire.types import Buffer

QUERY = 130
V1_REPORT = 131
V1_DONE = 132
V2_REPORT = 143
TYPES = frozenset({QUERY, V1_REPORT, V1_DONE, V2_REPORT})

ALL_NODES = ip_wire.ALL_NODES
ALL_ROUTERS = ip_wire.ALL_ROUTERS
V2_ROUTERS = bytes.fromhex("ff020000000000000000000000000016")
ANY = bytes(16)

# RFC 3810 5.2.12: multicast address record types (the same numbers as IGMPv3)
MODE_IS_INCLUDE = 1
MODE_IS_EXCLUDE = 2
CHANGE_TO_INCLUDE = 3
CHANGE_TO_EXCLUDE = 4
ALLOW_NEW_SOURCES = 5
BLOCK_OLD_SOURCES = 6

V1_MESSAGE = struct.Struct("!BBHHH16s")  # type, code, checksum, max delay, reserved, address
V1_LEN = V1_MESSAGE.size  # 24
V2_QUERY_TAIL = struct.Struct("!BBH")  # resv|S|QRV, QQIC, number of sources
V2_QUERY_LEN = V1_LEN + V2_QUERY_TAIL.size  # 28
V2_REPORT_HEADER = struct.Struct("!BBHHH")  # type, reserved, checksum, reserved, records
RECORD_HEADER = struct.Struct("!BBH16s")  # type, aux data len, number of sources, address

#: the hop-by-hop header: next header ICMPv6, length 0, Router Alert (value 0), PadN
HOP_BY_HOP = bytes((IPProto.ICMPV6, 0, 5, 2, 0, 0, 1, 0))
IP_HEADER_LEN = ip_wire.HEADER_LEN + len(HOP_BY_HOP)
V1_MAX_RESP_UNIT = 1000.0  # milliseconds


class Query(NamedTuple):
    version: int  # 1 or 2 (RFC 3810 8.1)
    max_resp: float  # seconds
    group: bytes  # :: for a general query
    suppress: bool = False
    qrv: int = 0
    qqi: float = 0.0
    sources: tuple[bytes, ...] = ()

    @property
    def is_general(self) -> bool:
        return self.group == ANY


class AddressRecord(NamedTuple):
    type: int
    group: bytes
    sources: tuple[bytes, ...] = ()
    aux: bytes = b""


class Report(NamedTuple):
    """An MLDv1 report or done: one address."""

    type: int
    group: bytes


class V2Report(NamedTuple):
    records: tuple[AddressRecord, ...]


Message = Query | Report | V2Report


def decode_max_resp(code: int) -> int:
    """RFC 3810 5.1.3: milliseconds, linear below 32768, else 12-bit mantissa, 3-bit exp."""
    if code < 32768:
        return code
    return ((code & 0x0FFF) | 0x1000) << (((code >> 12) & 0x07) + 3)


def encode_max_resp(value: int) -> int:
    if value < 32768:
        return max(value, 0)
    for exp in range(8):
        top = value >> (exp + 3)
        if top <= 0x1FFF:
            return 0x8000 | (exp << 12) | (top - 0x1000)
    return 0xFFFF


def decode_qqic(code: int) -> int:
    """RFC 3810 5.1.9: the same floating format as IGMPv3's QQIC."""
    if code < 128:
        return code
    return ((code & 0x0F) | 0x10) << (((code >> 4) & 0x07) + 3)


def parse(data: Buffer, src: bytes, dst: bytes, verify_checksum: bool = True) -> Message:
    """A whole ICMPv6 MLD message (header included)."""
    icmp_wire.parse(data, src, dst, verify_checksum)
    size = len(data)
    kind = data[0]
    if kind in (QUERY, V1_REPORT, V1_DONE):
        if size < V1_LEN:
            raise ParseError(DropReason.TRUNCATED, "mld")
        _k, _c, _s, code, _r, group = V1_MESSAGE.unpack_from(data)
        if kind != QUERY:
            return Report(kind, group)
        if size == V1_LEN:
            return Query(1, code / V1_MAX_RESP_UNIT, group)
        if size < V2_QUERY_LEN:
            raise ParseError(DropReason.BAD_LENGTH, "mld query of 25-27 bytes")  # 8.1
        flags, qqic, count = V2_QUERY_TAIL.unpack_from(data, V1_LEN)
        if V2_QUERY_LEN + 16 * count > size:
            raise ParseError(DropReason.TRUNCATED, "mldv2 query sources")
        sources = tuple(bytes(data[i:i + 16])
                        for i in range(V2_QUERY_LEN, V2_QUERY_LEN + 16 * count, 16))
        return Query(2, decode_max_resp(code) / V1_MAX_RESP_UNIT, group, bool(flags & 0x08),
                     flags & 0x07, float(decode_qqic(qqic)), sources)
    if kind == V2_REPORT:
        return _parse_v2_report(data)
    raise ParseError(DropReason.BAD_MESSAGE, f"icmpv6 type {kind} is not mld")


def _parse_v2_report(data: Buffer) -> V2Report:
    if len(data) < V2_REPORT_HEADER.size:
        raise ParseError(DropReason.TRUNCATED, "mldv2 report")
    count = V2_REPORT_HEADER.unpack_from(data)[4]
    offset = V2_REPORT_HEADER.size
    records: list[AddressRecord] = []
    for _ in range(count):
        if offset + RECORD_HEADER.size > len(data):
            raise ParseError(DropReason.TRUNCATED, "mldv2 address record")
        rtype, aux_words, nsrc, group = RECORD_HEADER.unpack_from(data, offset)
        offset += RECORD_HEADER.size
        end = offset + 16 * nsrc + 4 * aux_words
        if end > len(data):
            raise ParseError(DropReason.TRUNCATED, "mldv2 address record sources")
        sources = tuple(bytes(data[i:i + 16]) for i in range(offset, offset + 16 * nsrc, 16))
        records.append(AddressRecord(rtype, group, sources, bytes(data[offset + 16 * nsrc:end])))
        offset = end
    return V2Report(tuple(records))


def build_v1(kind: int, group: bytes, src: bytes, dst: bytes, max_delay_ms: int = 0) -> bytes:
    """An MLDv1 query, report or done (24 bytes)."""
    return icmp_wire.build(kind, 0, (max_delay_ms & 0xFFFF) << 16, group, src, dst)


def build_v2_query(group: bytes, src: bytes, dst: bytes, max_resp_code: int,
                   sources: Sequence[bytes] = (), suppress: bool = False, qrv: int = 2,
                   qqic: int = 125) -> bytes:
    tail = V2_QUERY_TAIL.pack((0x08 if suppress else 0) | (qrv & 0x07), qqic, len(sources))
    return icmp_wire.build(QUERY, 0, (max_resp_code & 0xFFFF) << 16,
                           group + tail + b"".join(sources), src, dst)


def record_length(record: AddressRecord) -> int:
    return RECORD_HEADER.size + 16 * len(record.sources) + len(record.aux)


def build_v2_report(records: Sequence[AddressRecord], src: bytes, dst: bytes = V2_ROUTERS,
                    ) -> bytes:
    body = b"".join(RECORD_HEADER.pack(r.type, len(r.aux) // 4, len(r.sources), r.group)
                    + b"".join(r.sources) + r.aux for r in records)
    return icmp_wire.build(V2_REPORT, 0, len(records), body, src, dst)


def split_records(records: Sequence[AddressRecord], room: int) -> Iterator[list[AddressRecord]]:
    """RFC 3810 5.2.15: as many whole records per report as fit in ``room`` bytes."""
    batch: list[AddressRecord] = []
    used = V2_REPORT_HEADER.size
    for rec in records:
        size = record_length(rec)
        if batch and used + size > room:
            yield batch
            batch, used = [], V2_REPORT_HEADER.size
        batch.append(rec)
        used += size
    if batch:
        yield batch


def build_packet(src: bytes, dst: bytes, message: bytes) -> bytes:
    """IPv6 header (hop limit 1) + hop-by-hop Router Alert + the MLD message."""
    buf = bytearray(IP_HEADER_LEN + len(message))
    ip_wire.build_into(buf, 0, payload_length=len(HOP_BY_HOP) + len(message),
                       next_header=IPProto.HOPOPT, src=src, dst=dst, hop_limit=1)
    buf[ip_wire.HEADER_LEN:IP_HEADER_LEN] = HOP_BY_HOP
    buf[IP_HEADER_LEN:] = message
    return bytes(buf)
