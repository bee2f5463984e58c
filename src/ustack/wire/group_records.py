# SPDX-License-Identifier: MIT
"""What IGMPv3 and MLDv2 share on the wire, whatever the address size.

IGMPv3 (RFC 3376 4.1, 4.2) and MLDv2 (RFC 3810 5.1, 5.2) carry the same queries
and the same group records, with 4-byte or 16-byte addresses: a record is type,
aux data length (in 32-bit words), number of sources and the group (4.2.4 /
5.2.4), then the sources and the aux data; a report is 8 bytes of header whose
last two hold the number of records (4.2 / 5.2). Both encode times in the same
floating-point format (RFC 3376 4.1.1 with a 4-bit mantissa in 8 bits, RFC 3810
5.1.3 with a 12-bit mantissa in 16 bits). :mod:`ustack.wire.igmp` and
:mod:`ustack.wire.mld` keep their own message types, headers and checksums.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from ustack.wire.errors import DropReason, ParseError
from ustack.wire.types import Buffer

# RFC 3376 4.2.12 = RFC 3810 5.2.12: record types
MODE_IS_INCLUDE = 1
MODE_IS_EXCLUDE = 2
CHANGE_TO_INCLUDE = 3
CHANGE_TO_EXCLUDE = 4
ALLOW_NEW_SOURCES = 5
BLOCK_OLD_SOURCES = 6

#: type, reserved, checksum, reserved, number of records (RFC 3376 4.2 / RFC 3810 5.2)
REPORT_HEADER = struct.Struct("!BBHHH")
#: type, aux data len, number of sources, group: by address size
RECORD_HEADERS = {4: struct.Struct("!BBH4s"), 16: struct.Struct("!BBH16s")}


class Query(NamedTuple):
    """A query of any version: IGMP 1-3 (RFC 3376 7.1) or MLD 1-2 (RFC 3810 8.1)."""

    version: int
    max_resp: float  # seconds
    group: bytes  # all zeros for a general query
    suppress: bool = False  # S flag (newest version)
    qrv: int = 0  # querier's robustness variable (newest version; 0 = not given)
    qqi: float = 0.0  # querier's query interval in seconds (newest version; 0 = not given)
    sources: tuple[bytes, ...] = ()

    @property
    def is_general(self) -> bool:
        return not any(self.group)


class GroupRecord(NamedTuple):
    """RFC 3376 4.2.4 group record, RFC 3810 5.2.4 multicast address record."""

    type: int
    group: bytes
    sources: tuple[bytes, ...] = ()
    aux: bytes = b""


class Report(NamedTuple):
    """An older-version message about one group: an IGMPv1/v2 report or v2 leave
    (RFC 2236 2), an MLDv1 report or done (RFC 2710 3)."""

    type: int
    group: bytes


class RecordReport(NamedTuple):
    """An IGMPv3 (RFC 3376 4.2) or MLDv2 (RFC 3810 5.2) report: its records."""

    records: tuple[GroupRecord, ...]


def decode_floating(code: int, mantissa_bits: int) -> int:
    """RFC 3376 4.1.1 / RFC 3810 5.1.3: linear below 1 << (mantissa_bits + 3), else a 1
    flag bit, a 3-bit exponent and the mantissa: (mant | 1 << mantissa_bits) << (exp + 3)."""
    if code < 1 << (mantissa_bits + 3):
        return code
    mantissa = (code & ((1 << mantissa_bits) - 1)) | (1 << mantissa_bits)
    return mantissa << (((code >> mantissa_bits) & 0x07) + 3)


def encode_floating(value: int, mantissa_bits: int) -> int:
    """The code whose decoded value is the largest not above ``value`` (saturating)."""
    if value < 1 << (mantissa_bits + 3):
        return max(value, 0)
    for exp in range(8):
        top = value >> (exp + 3)
        if top < 2 << mantissa_bits:  # the first exponent that fits leaves the leading 1
            return (1 << (mantissa_bits + 3)) | (exp << mantissa_bits) | (
                top - (1 << mantissa_bits))
    return (1 << (mantissa_bits + 4)) - 1


def read_addresses(data: Buffer, offset: int, count: int, size: int, what: str,
                   ) -> tuple[bytes, ...]:
    """``count`` addresses of ``size`` bytes from ``offset`` (TRUNCATED if they overrun)."""
    end = offset + size * count
    if end > len(data):
        raise ParseError(DropReason.TRUNCATED, what)
    return tuple(bytes(data[i:i + size]) for i in range(offset, end, size))


def read_records(data: Buffer, size: int, what: str) -> tuple[GroupRecord, ...]:
    """The records of a whole report (header included) with ``size``-byte addresses."""
    if len(data) < REPORT_HEADER.size:
        raise ParseError(DropReason.TRUNCATED, what)
    count = REPORT_HEADER.unpack_from(data)[4]
    header = RECORD_HEADERS[size]
    offset = REPORT_HEADER.size
    records: list[GroupRecord] = []
    for _ in range(count):
        if offset + header.size > len(data):
            raise ParseError(DropReason.TRUNCATED, f"{what} record")
        rtype, aux_words, nsrc, group = header.unpack_from(data, offset)
        offset += header.size
        sources = read_addresses(data, offset, nsrc, size, f"{what} record sources")
        offset += size * nsrc
        aux_end = offset + 4 * aux_words
        if aux_end > len(data):
            raise ParseError(DropReason.TRUNCATED, f"{what} record sources")
        records.append(GroupRecord(rtype, group, sources, bytes(data[offset:aux_end])))
        offset = aux_end
    return tuple(records)


def build_records(records: Sequence[GroupRecord], size: int) -> bytes:
    """The records of a report with ``size``-byte addresses, back to back (the report
    header is the caller's)."""
    header = RECORD_HEADERS[size]
    return b"".join(header.pack(r.type, len(r.aux) // 4, len(r.sources), r.group)
                    + b"".join(r.sources) + r.aux for r in records)


def record_length(record: GroupRecord, size: int) -> int:
    return RECORD_HEADERS[size].size + size * len(record.sources) + len(record.aux)


def split_records(records: Sequence[GroupRecord], room: int, size: int,
                  ) -> Iterator[list[GroupRecord]]:
    """RFC 3376 4.2.16 / RFC 3810 5.2.15: as many whole records per report as fit in
    ``room`` bytes (report header included)."""
    batch: list[GroupRecord] = []
    used = REPORT_HEADER.size
    for rec in records:
        length = record_length(rec, size)
        if batch and used + length > room:
            yield batch
            batch, used = [], REPORT_HEADER.size
        batch.append(rec)
        used += length
    if batch:
        yield batch
