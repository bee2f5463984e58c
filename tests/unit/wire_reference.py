# SPDX-License-Identifier: MIT
"""Reference helpers shared by the wire tests: a naive RFC 1071 checksum, pseudo-headers."""

from __future__ import annotations

import struct


def naive_sum(data: bytes) -> int:
    """RFC 1071 section 4.1, literally: add 16-bit words, fold each carry back in."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def naive_checksum(data: bytes) -> int:
    return ~naive_sum(data) & 0xFFFF


def pseudo4(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """RFC 9293 3.1 / RFC 768: src, dst, zero, protocol, 16-bit length."""
    return src + dst + struct.pack("!BBH", 0, proto, length)


def pseudo6(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """RFC 8200 8.1: src, dst, 32-bit length, three zero bytes, next header."""
    return src + dst + struct.pack("!I3xB", length, proto)
