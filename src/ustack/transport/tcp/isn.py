# SPDX-License-Identifier: MIT
"""Initial sequence numbers (RFC 6528): a 4-microsecond clock plus a keyed hash of the 4-tuple."""

from __future__ import annotations

import hashlib


class ISNGenerator:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret[:64]

    def offset(self, local: bytes, lport: int, remote: bytes, rport: int) -> int:
        """F(localip, localport, remoteip, remoteport, secretkey): 32 pseudo-random bits."""
        digest = hashlib.blake2b(
            local + lport.to_bytes(2, "big") + remote + rport.to_bytes(2, "big"),
            digest_size=4, key=self._secret).digest()
        return int.from_bytes(digest, "big")

    def isn(self, now: float, local: bytes, lport: int, remote: bytes, rport: int) -> int:
        """ISN = M + F(...), M ticking every 4 microseconds (RFC 6528 section 3)."""
        m = int(now * 250_000)
        return (m + self.offset(local, lport, remote, rport)) & 0xFFFFFFFF
