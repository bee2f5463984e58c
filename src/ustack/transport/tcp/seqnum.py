# SPDX-License-Identifier: MIT
"""Sequence-number arithmetic (RFC 1982 serial numbers, as RFC 9293 3.4 uses them).

Inside ustack's TCP, sequence numbers are *unwrapped*: plain Python ints that
keep growing past 2**32, so ordinary comparisons are correct and wrap-around
bugs cannot be written. Wire values are unwrapped once, at the boundary, relative
to a nearby reference (``snd_una`` for acknowledgments, ``rcv_nxt`` for sequence
numbers); :func:`wire` wraps them again for sending. The modular comparisons
below are for the few places that must compare raw 32-bit values (timestamps).
"""

from __future__ import annotations

MOD = 1 << 32
MASK = MOD - 1
HALF = 1 << 31


def unwrap(value: int, reference: int) -> int:
    """The unwrapped number nearest to ``reference`` whose low 32 bits are ``value``."""
    delta = (value - reference) & MASK
    if delta >= HALF:
        delta -= MOD
    return reference + delta


def wire(value: int) -> int:
    """An unwrapped number as the 32-bit field sent on the wire."""
    return value & MASK


def diff(a: int, b: int) -> int:
    """Signed distance a - b between two 32-bit serial numbers."""
    d = (a - b) & MASK
    return d - MOD if d >= HALF else d


def lt(a: int, b: int) -> bool:
    """a precedes b in 32-bit serial arithmetic."""
    return diff(a, b) < 0


def leq(a: int, b: int) -> bool:
    return diff(a, b) <= 0


def gt(a: int, b: int) -> bool:
    return diff(a, b) > 0


def geq(a: int, b: int) -> bool:
    return diff(a, b) >= 0
