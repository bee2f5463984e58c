# SPDX-License-Identifier: MIT
"""The Internet checksum (RFC 1071) without a per-byte Python loop.

Since 2**16 == 1 (mod 0xFFFF), the one's-complement sum of a buffer's 16-bit
big-endian words equals the buffer read as one big integer, modulo 0xFFFF.
``int.from_bytes`` and the modulo both run in C, so a 64 KiB segment costs
microseconds. A one's-complement sum of non-zero data is never +0, so a zero
remainder is reported as 0xFFFF ("negative zero").
"""

from __future__ import annotations

from ustack.wire.types import Buffer

_FOLD = 0xFFFF


def ones_sum(data: Buffer, initial: int = 0) -> int:
    """One's-complement 16-bit sum of ``data`` (zero-padded to even length) plus ``initial``."""
    value = int.from_bytes(data, "big")  # (bytes are read in place, views copied once)
    if len(data) & 1:
        value <<= 8
    value += initial
    if value == 0:
        return 0
    return value % _FOLD or _FOLD


def combine(*sums: int) -> int:
    """Add partial one's-complement sums (each over an even-length chunk)."""
    value = sum(sums)
    if value == 0:
        return 0
    return value % _FOLD or _FOLD


def finish(total: int) -> int:
    """The checksum field value for a one's-complement sum: its complement."""
    return ~total & 0xFFFF


def checksum(data: Buffer, initial: int = 0) -> int:
    """The Internet checksum of ``data`` with a partial sum ``initial`` folded in."""
    return finish(ones_sum(data, initial))


def pseudo_header_sum(src: bytes, dst: bytes, protocol: int, length: int) -> int:
    """Partial sum of the IPv4 (RFC 793 3.1) or IPv6 (RFC 8200 8.1) pseudo-header.

    Both reduce to the same words: the addresses, the upper-layer length and the
    protocol number; word order does not change a one's-complement sum. Each address
    is a whole number of 16-bit words, so it may be summed as one integer on its own
    (the concatenation would only shift it by a multiple of 16 bits, which the modulo
    ignores).
    """
    value = (int.from_bytes(src, "big") + int.from_bytes(dst, "big") + protocol
             + (length >> 16) + (length & 0xFFFF))
    if value == 0:
        return 0
    return value % _FOLD or _FOLD


def verify(data: Buffer, initial: int = 0) -> bool:
    """True when a buffer holding its own checksum field sums to all ones."""
    return ones_sum(data, initial) == _FOLD
