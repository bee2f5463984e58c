# SPDX-License-Identifier: MIT
"""SYN cookies (RFC 4987 3.6): a stateless SYN-ACK whose ISN encodes what we must remember.

ISN layout: 5 bits of a 64-second counter, 3 bits of MSS index, 24 bits of a keyed
hash of the 4-tuple, the counter and the peer's ISN. With timestamps, the low 6
bits of our TSval carry the peer's window scale (4 bits, 15 = none), SACK-permitted
and ECN (RFC 3168 6.1.1: the SYN-ACK said ECE), as Linux does (TS_OPT_ECN), and come
back in the ACK's TSecr. Without timestamps there is nowhere to keep them: such a
connection has no window scaling, SACK or ECN.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from ustack.transport.tcp.seqnum import gt

MSS_TABLE = (536, 1220, 1440, 1460, 4312, 8960, 16344, 65476)
PERIOD = 64.0
TS_BITS = 6
NO_WSCALE = 0xF


ECN_BIT = 1 << 5  # in the TSval, above the window scale (bits 1-4) and SACK (bit 0)


class CookieOptions(NamedTuple):
    mss: int
    wscale: int | None
    sack: bool


class SynCookies:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret[:64]

    def _hash(self, four_tuple: bytes, count: int, peer_isn: int) -> int:
        data = four_tuple + count.to_bytes(4, "big") + peer_isn.to_bytes(4, "big")
        return int.from_bytes(hashlib.blake2b(data, digest_size=3, key=self._secret).digest(),
                              "big")

    @staticmethod
    def mss_index(mss: int) -> int:
        best = 0
        for i, value in enumerate(MSS_TABLE):
            if value <= mss:
                best = i
        return best

    def make(self, now: float, four_tuple: bytes, peer_isn: int, mss: int) -> int:
        count = int(now / PERIOD) & 0x1F
        index = self.mss_index(mss)
        return (count << 27) | (index << 24) | self._hash(four_tuple, count, peer_isn)

    def check(self, now: float, four_tuple: bytes, peer_isn: int, cookie: int) -> int | None:
        """The MSS the cookie carries, or None if it is forged or older than two periods."""
        count = cookie >> 27
        age = (int(now / PERIOD) - count) & 0x1F
        if age > 1:
            return None
        if self._hash(four_tuple, count, peer_isn) != cookie & 0xFFFFFF:
            return None
        return MSS_TABLE[(cookie >> 24) & 0x7]

    @staticmethod
    def encode_ts(tsval: int, wscale: int | None, sack: bool, ecn: bool = False) -> int:
        """``tsval`` with its low bits replaced, never ahead of it (as Linux's
        cookie_init_timestamp): the connection's later TSvals must not look older."""
        bits = ((NO_WSCALE if wscale is None else wscale) << 1) | int(sack) | \
            (ECN_BIT if ecn else 0)
        value = (tsval & ~((1 << TS_BITS) - 1) & 0xFFFFFFFF) | bits
        if gt(value, tsval & 0xFFFFFFFF):
            value = (value - (1 << TS_BITS)) & 0xFFFFFFFF
        return value

    @staticmethod
    def decode_ts(tsecr: int) -> tuple[int | None, bool]:
        wscale = (tsecr >> 1) & 0xF
        return (None if wscale == NO_WSCALE else wscale), bool(tsecr & 1)

    @staticmethod
    def decode_ecn(tsecr: int) -> bool:
        """Whether the cookie SYN-ACK whose TSval ``tsecr`` echoes agreed to ECN."""
        return bool(tsecr & ECN_BIT)
