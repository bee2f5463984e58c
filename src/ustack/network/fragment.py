# SPDX-License-Identifier: MIT
"""Fragment reassembly for IPv4 (RFC 791 3.2) and IPv6 (RFC 8200 4.5).

Overlapping fragments drop the whole datagram (RFC 5722, and the same policy
for IPv4); exact duplicates are ignored. Each datagram has a timeout, and all
held fragments share a memory cap; the oldest datagrams are evicted past it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from ustack.clock import Clock, Timer
from ustack.stats import Stats
from ustack.wire.errors import DropReason

K = TypeVar("K", bound=Hashable)

MAX_DATAGRAM = 65535


class _Datagram:
    __slots__ = ("first_header", "fragments", "received", "size", "timer", "total")

    def __init__(self) -> None:
        self.fragments: dict[int, bytes] = {}  # offset -> data
        self.received = 0
        self.total = -1  # known once the last fragment arrived
        self.size = 0  # bytes held, for the memory cap
        self.first_header = b""  # network header of the offset-0 fragment
        self.timer: Timer | None = None


class Reassembler(Generic[K]):
    def __init__(self, clock: Clock, stats: Stats, layer: str, timeout: float,
                 memory_limit: int, max_payload: int = MAX_DATAGRAM) -> None:
        self._clock = clock
        self._stats = stats
        self._layer = layer
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.max_payload = max_payload
        self.memory = 0
        self._pending: dict[K, _Datagram] = {}
        #: called with the first fragment's header when a datagram times out (ICMP)
        self.on_timeout: Callable[[bytes], None] | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, key: K, offset: int, more: bool, data: memoryview,
            header: memoryview) -> tuple[bytes, bytes] | None:
        """Add a fragment; returns (first fragment's header, whole payload) once complete."""
        end = offset + len(data)
        if end > self.max_payload or (more and len(data) % 8) or (more and not data):
            self._stats.drop(self._layer, DropReason.BAD_FRAGMENT)
            return None
        dgram = self._pending.get(key)
        if dgram is None:
            dgram = self._pending[key] = _Datagram()
            dgram.timer = self._clock.call_later(self.timeout, self._expire, key)
        if offset in dgram.fragments and len(dgram.fragments[offset]) == len(data):
            self._stats.count(f"{self._layer}.fragment_duplicate")
            return None
        if not more and ((dgram.total >= 0 and dgram.total != end) or
                         any(o + len(d) > end for o, d in dgram.fragments.items())):
            self._discard(key, DropReason.BAD_FRAGMENT)
            return None
        if more and dgram.total >= 0 and end > dgram.total:
            self._discard(key, DropReason.BAD_FRAGMENT)
            return None
        for other, chunk in dgram.fragments.items():
            if other < end and offset < other + len(chunk):
                self._discard(key, DropReason.FRAGMENT_OVERLAP)
                return None
        dgram.fragments[offset] = bytes(data)
        dgram.received += len(data)
        dgram.size += len(data) + len(header)
        self.memory += len(data) + len(header)
        if offset == 0:
            dgram.first_header = bytes(header)
        if not more:
            dgram.total = end
        if dgram.total >= 0 and dgram.received == dgram.total:  # frees memory: evict nobody
            self._forget(key)
            payload = b"".join(dgram.fragments[o] for o in sorted(dgram.fragments))
            self._stats.count(f"{self._layer}.reassembled")
            return dgram.first_header, payload
        if self.memory > self.memory_limit:
            self._evict(keep=key)
        return None

    def _forget(self, key: K) -> _Datagram | None:
        dgram = self._pending.pop(key, None)
        if dgram is not None:
            self.memory -= dgram.size
            if dgram.timer is not None:
                dgram.timer.cancel()
        return dgram

    def _discard(self, key: K, reason: DropReason) -> None:
        self._forget(key)
        self._stats.drop(self._layer, reason)

    def _evict(self, keep: K) -> None:
        for key in list(self._pending):
            if self.memory <= self.memory_limit:
                return
            if key != keep or len(self._pending) == 1:
                self._discard(key, DropReason.REASSEMBLY_MEMORY)

    def _expire(self, key: K) -> None:
        dgram = self._pending.get(key)
        if dgram is None:
            return
        dgram.timer = None
        self._discard(key, DropReason.REASSEMBLY_TIMEOUT)
        if dgram.first_header and self.on_timeout is not None:
            self.on_timeout(dgram.first_header + dgram.fragments.get(0, b"")[:8])
