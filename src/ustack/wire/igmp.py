# SPDX-License-Identifier: MIT
"""IGMP messages: v1/v2 (RFC 1112 appendix I, RFC 2236 section 2) and v3 (RFC 3376 4.1/4.2).

Queries of all three versions share type 0x11 and are told apart by length and
Max Resp Code (RFC 3376 7.1). Checksums are the plain Internet checksum over the
IGMP message. What ustack sends travels in an IPv4 header with the Router Alert
option (RFC 2113), TTL 1 and precedence "internetwork control" (RFC 3376 4).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

from ustack.wire import checksum
from ustack.wire import group_records as records_wire
from ustack.wire import ipv4 as ip_wire
from ustack.wire.errors import DropReason, ParseError

# re-exported: the shared message types under IGMP's names
from ustack.wire.group_records import GroupRecord as GroupRecord
from ustack.wire.group_records import Query as Query
from ustack.wire.group_records import Report as Report
from ustack.wire.proto import IPProto
from ustack.wire.types import Buffer

QUERY = 0x11
V1_REPORT = 0x12
V2_REPORT = 0x16
V2_LEAVE = 0x17
V3_REPORT = 0x22

ALL_SYSTEMS = bytes((224, 0, 0, 1))
ALL_ROUTERS = bytes((224, 0, 0, 2))
V3_ROUTERS = bytes((224, 0, 0, 22))
ANY = bytes(4)
ADDRESS_SIZE = 4

V2_MESSAGE = struct.Struct("!BBH4s")  # type, max resp time, checksum, group
V3_QUERY = struct.Struct("!BBH4sBBH")  # ..., resv|S|QRV, QQIC, number of sources
V3_REPORT_HEADER = records_wire.REPORT_HEADER
V2_LEN = V2_MESSAGE.size  # 8
V3_QUERY_LEN = V3_QUERY.size  # 12

#: IPv4 header with the Router Alert option (RFC 2113): 24 bytes
ROUTER_ALERT = b"\x94\x04\x00\x00"
IP_HEADER_LEN = ip_wire.MIN_HEADER_LEN + len(ROUTER_ALERT)
TOS_INTERNETWORK_CONTROL = 0xC0
V1_MAX_RESP = 10.0  # RFC 2236 4: a v1 query (code 0) means 10 seconds

#: RFC 3376 4.2
V3Report = records_wire.RecordReport

Message = Query | Report | V3Report


def decode_code(code: int) -> int:
    """RFC 3376 4.1.1 / 4.1.7: Max Resp Code and QQIC, linear below 128, else floating."""
    return records_wire.decode_floating(code, 4)


def encode_code(value: int) -> int:
    """The code whose decoded value is the largest not above ``value`` (saturating)."""
    return records_wire.encode_floating(value, 4)


def parse(data: Buffer, verify_checksum: bool = True) -> Message:
    """Check length and checksum, then decode; unknown types raise BAD_MESSAGE."""
    size = len(data)
    if size < V2_LEN:
        raise ParseError(DropReason.TRUNCATED, "igmp")
    if verify_checksum and not checksum.verify(data):
        raise ParseError(DropReason.BAD_CHECKSUM, "igmp")
    kind, code, _csum, group = V2_MESSAGE.unpack_from(data)
    if kind == QUERY:
        return _parse_query(data, code, group)
    if kind in (V1_REPORT, V2_REPORT, V2_LEAVE):
        return Report(kind, group)
    if kind == V3_REPORT:
        return _parse_v3_report(data)
    raise ParseError(DropReason.BAD_MESSAGE, f"igmp type {kind:#x}")


def _parse_query(data: Buffer, code: int, group: bytes) -> Query:
    size = len(data)
    if size == V2_LEN:  # RFC 3376 7.1: v1 when the code is zero, else v2
        if code == 0:
            return Query(1, V1_MAX_RESP, group)
        return Query(2, code / 10, group)
    if size < V3_QUERY_LEN:
        raise ParseError(DropReason.BAD_LENGTH, "igmp query of 9-11 bytes")  # 7.1: ignored
    _k, _c, _s, _g, flags, qqic, count = V3_QUERY.unpack_from(data)
    sources = records_wire.read_addresses(data, V3_QUERY_LEN, count, ADDRESS_SIZE,
                                          "igmpv3 query sources")
    return Query(3, decode_code(code) / 10, group, bool(flags & 0x08), flags & 0x07,
                 float(decode_code(qqic)), sources)


def _parse_v3_report(data: Buffer) -> V3Report:
    return V3Report(records_wire.read_records(data, ADDRESS_SIZE, "igmpv3 group"))


def _finish(buf: bytearray) -> bytes:
    struct.pack_into("!H", buf, 2, checksum.checksum(buf))
    return bytes(buf)


def build_v2(kind: int, group: bytes, max_resp_code: int = 0) -> bytes:
    """An 8-byte message: a v1/v2 query, a v1/v2 report or a v2 leave."""
    buf = bytearray(V2_LEN)
    V2_MESSAGE.pack_into(buf, 0, kind, max_resp_code, 0, group)
    return _finish(buf)


def build_v3_query(group: bytes, max_resp_code: int, sources: Sequence[bytes] = (),
                   suppress: bool = False, qrv: int = 2, qqic: int = 125) -> bytes:
    buf = bytearray(V3_QUERY_LEN + 4 * len(sources))
    V3_QUERY.pack_into(buf, 0, QUERY, max_resp_code, 0, group,
                       (0x08 if suppress else 0) | (qrv & 0x07), qqic, len(sources))
    buf[V3_QUERY_LEN:] = b"".join(sources)
    return _finish(buf)


def record_length(record: GroupRecord) -> int:
    return records_wire.record_length(record, ADDRESS_SIZE)


def build_v3_report(records: Sequence[GroupRecord]) -> bytes:
    body = bytearray(V3_REPORT_HEADER.size)
    V3_REPORT_HEADER.pack_into(body, 0, V3_REPORT, 0, 0, 0, len(records))
    body += records_wire.build_records(records, ADDRESS_SIZE)
    return _finish(body)


def split_records(records: Sequence[GroupRecord], room: int) -> Iterator[list[GroupRecord]]:
    """RFC 3376 4.2.16: as many whole records per report as fit in ``room`` bytes."""
    return records_wire.split_records(records, room, ADDRESS_SIZE)


def build_packet(src: bytes, dst: bytes, message: bytes, ident: int) -> bytes:
    """IPv4 header with Router Alert, TTL 1, TOS 0xc0, then ``message`` (RFC 3376 4)."""
    total = IP_HEADER_LEN + len(message)
    buf = bytearray(total)
    ip_wire.HEADER.pack_into(buf, 0, 0x40 | (IP_HEADER_LEN // 4), TOS_INTERNETWORK_CONTROL,
                             total, ident, 0, 1, IPProto.IGMP, 0, src, dst)
    buf[ip_wire.MIN_HEADER_LEN:IP_HEADER_LEN] = ROUTER_ALERT
    struct.pack_into("!H", buf, 10, checksum.checksum(memoryview(buf)[:IP_HEADER_LEN]))
    buf[IP_HEADER_LEN:] = message
    return bytes(buf)
