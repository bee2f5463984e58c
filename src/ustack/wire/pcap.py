# SPDX-License-Identifier: MIT
"""The classic libpcap file format (what tshark, tcpdump and wireshark all read)."""

from __future__ import annotations

import struct
from typing import BinaryIO

from ustack.wire.types import Buffer

MAGIC_NANOSECONDS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4/IPv6, used by links without an Ethernet header
_FILE_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")


def file_header(linktype: int = LINKTYPE_ETHERNET, snaplen: int = 262144) -> bytes:
    return _FILE_HEADER.pack(MAGIC_NANOSECONDS, 2, 4, 0, 0, snaplen, linktype)


def record(timestamp: float, frame: Buffer, snaplen: int = 262144) -> bytes:
    """One record header plus the (possibly truncated) frame, timestamped in nanoseconds."""
    ns = int(timestamp * 1e9)
    captured = frame[:snaplen]
    return _RECORD_HEADER.pack(ns // 1_000_000_000, ns % 1_000_000_000, len(captured),
                               len(frame)) + bytes(captured)


class PcapWriter:
    """Append records to a binary stream that already has (or gets) a file header."""

    def __init__(self, stream: BinaryIO, linktype: int = LINKTYPE_ETHERNET,
                 snaplen: int = 262144) -> None:
        self._stream = stream
        self._snaplen = snaplen
        stream.write(file_header(linktype, snaplen))

    def write(self, timestamp: float, frame: Buffer) -> None:
        self._stream.write(record(timestamp, frame, self._snaplen))

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()
