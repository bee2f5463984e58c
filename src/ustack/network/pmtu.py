# SPDX-License-Identifier: MIT
"""Path MTU cache (RFC 1191 for IPv4, RFC 8201 for IPv6), fed by ICMP errors."""

from __future__ import annotations

from ustack.clock import Clock

PMTU_EXPIRY = 600.0  # RFC 1191 section 6.3 suggests ten minutes


class PathMTUCache:
    def __init__(self, clock: Clock, minimum: int, max_entries: int = 4096) -> None:
        self._clock = clock
        self.minimum = minimum
        self._entries: dict[bytes, tuple[int, float]] = {}
        self._max_entries = max_entries

    def get(self, dst: bytes, default: int) -> int:
        entry = self._entries.get(dst)
        if entry is None:
            return default
        mtu, expires = entry
        if self._clock.now() >= expires:
            del self._entries[dst]
            return default
        return min(mtu, default)

    def entry(self, dst: bytes) -> tuple[int, float] | None:
        """The raw entry (MTU, expiry) for ``dst``, to :meth:`restore` it later."""
        return self._entries.get(dst)

    def restore(self, dst: bytes, entry: tuple[int, float] | None) -> None:
        """Put back what :meth:`entry` returned: an update the transport layer rejected
        (RFC 5927 4.1: an ICMP error quoting nothing in flight must change nothing)."""
        if entry is None:
            self._entries.pop(dst, None)
        else:
            self._entries[dst] = entry

    def update(self, dst: bytes, mtu: int) -> int:
        """Record a smaller path MTU (never below the protocol's minimum); returns it."""
        mtu = max(mtu, self.minimum)
        current = self._entries.get(dst)
        if current is not None and current[0] <= mtu:
            return current[0]
        if len(self._entries) >= self._max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[dst] = (mtu, self._clock.now() + PMTU_EXPIRY)
        return mtu
