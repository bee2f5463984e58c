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

from ustack.wire import group_records as records_wire
from ustack.wire import icmp6 as icmp_wire
from ustack.wire import ipv6 as ip_wire
from ustack.wire.errors import DropReason, ParseError

# re-exported: the shared message types under MLD's names
from ustack.wire.group_records import Query as Query
from ustack.wire.group_records import Report as Report
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
ADDRESS_SIZE = 16

#: RFC 3810 5.2.4's name for a group record
AddressRecord = records_wire.GroupRecord

V1_MESSAGE = struct.Struct("!BBHHH16s")  # type, code, checksum, max delay, reserved, address
V1_LEN = V1_MESSAGE.size  # 24
V2_QUERY_TAIL = struct.Struct("!BBH")  # resv|S|QRV, QQIC, number of sources
V2_QUERY_LEN = V1_LEN + V2_QUERY_TAIL.size  # 28
V2_REPORT_HEADER = records_wire.REPORT_HEADER

#: the hop-by-hop header: next header ICMPv6, length 0, Router Alert (value 0), PadN
HOP_BY_HOP = bytes((IPProto.ICMPV6, 0, 5, 2, 0, 0, 1, 0))
IP_HEADER_LEN = ip_wire.HEADER_LEN + len(HOP_BY_HOP)
V1_MAX_RESP_UNIT = 1000.0  # milliseconds

#: RFC 3810 5.2
V2Report = records_wire.RecordReport

Message = Query | Report | V2Report


def decode_max_resp(code: int) -> int:
    """RFC 3810 5.1.3: milliseconds, linear below 32768, else 12-bit mantissa, 3-bit exp."""
    return records_wire.decode_floating(code, 12)


def encode_max_resp(value: int) -> int:
    return records_wire.encode_floating(value, 12)


def decode_qqic(code: int) -> int:
    """RFC 3810 5.1.9: the same floating format as IGMPv3's QQIC."""
    return records_wire.decode_floating(code, 4)


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
        sources = records_wire.read_addresses(data, V2_QUERY_LEN, count, ADDRESS_SIZE,
                                              "mldv2 query sources")
        return Query(2, decode_max_resp(code) / V1_MAX_RESP_UNIT, group, bool(flags & 0x08),
                     flags & 0x07, float(decode_qqic(qqic)), sources)
    if kind == V2_REPORT:
        return _parse_v2_report(data)
    raise ParseError(DropReason.BAD_MESSAGE, f"icmpv6 type {kind} is not mld")


def _parse_v2_report(data: Buffer) -> V2Report:
    return V2Report(records_wire.read_records(data, ADDRESS_SIZE, "mldv2 address"))


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
    return records_wire.record_length(record, ADDRESS_SIZE)


def build_v2_report(records: Sequence[AddressRecord], src: bytes, dst: bytes = V2_ROUTERS,
                    ) -> bytes:
    """RFC 3810 5.2: the ICMPv6 header's last two bytes hold the number of records."""
    return icmp_wire.build(V2_REPORT, 0, len(records),
                           records_wire.build_records(records, ADDRESS_SIZE), src, dst)


def split_records(records: Sequence[AddressRecord], room: int) -> Iterator[list[AddressRecord]]:
    """RFC 3810 5.2.15: as many whole records per report as fit in ``room`` bytes."""
    return records_wire.split_records(records, room, ADDRESS_SIZE)


def build_packet(src: bytes, dst: bytes, message: bytes) -> bytes:
    """IPv6 header (hop limit 1) + hop-by-hop Router Alert + the MLD message."""
    buf = bytearray(IP_HEADER_LEN + len(message))
    ip_wire.build_into(buf, 0, payload_length=len(HOP_BY_HOP) + len(message),
                       next_header=IPProto.HOPOPT, src=src, dst=dst, hop_limit=1)
    buf[ip_wire.HEADER_LEN:IP_HEADER_LEN] = HOP_BY_HOP
    buf[IP_HEADER_LEN:] = message
    return bytes(buf)
