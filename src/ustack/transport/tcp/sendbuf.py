# SPDX-License-Identifier: MIT
"""The send buffer: application bytes from snd_una on, sliced for (re)transmission.

Chunks are immutable ``bytes`` (segments in flight reference them), indexed by
the unwrapped sequence number of their first byte. Small writes are coalesced
so that segments are usually one zero-copy slice of one chunk.
"""

from __future__ import annotations

import bisect

COALESCE_LIMIT = 64 * 1024


class SendBuffer:
    def __init__(self, start: int) -> None:
        self.start = start  # sequence number of the first byte held (snd_una's data)
        self.end = start  # sequence number after the last byte
        self._starts: list[int] = []
        self._chunks: list[bytes | memoryview] = []

    def __len__(self) -> int:
        return self.end - self.start

    def rebase(self, start: int) -> None:
        """Set the first sequence number (once the ISN is chosen), before any data."""
        shift = start - self.start
        self.start, self.end = start, self.end + shift
        self._starts = [s + shift for s in self._starts]

    def append(self, data: bytes | memoryview) -> None:
        """Queue ``data``: bytes, or a view of bytes (never of mutable memory)."""
        if not data:
            return
        chunks = self._chunks
        if chunks and len(chunks[-1]) + len(data) <= COALESCE_LIMIT and len(data) < 4096:
            chunks[-1] = bytes(chunks[-1]) + bytes(data)
        else:
            self._starts.append(self.end)
            chunks.append(data)
        self.end += len(data)

    def view(self, seq: int, length: int) -> memoryview | bytes:
        """Bytes [seq, seq+length): a slice of one chunk when it can be, else a copy."""
        i = bisect.bisect_right(self._starts, seq) - 1
        chunk = self._chunks[i]
        offset = seq - self._starts[i]
        if offset + length <= len(chunk):
            return memoryview(chunk)[offset:offset + length]
        parts = [memoryview(chunk)[offset:]]
        remaining = length - (len(chunk) - offset)
        while remaining > 0:
            i += 1
            piece = self._chunks[i][:remaining]
            parts.append(memoryview(piece))
            remaining -= len(piece)
        return b"".join(parts)

    def release(self, upto: int) -> None:
        """Forget bytes below ``upto`` (they were acknowledged)."""
        if upto <= self.start:
            return
        upto = min(upto, self.end)
        starts, chunks = self._starts, self._chunks
        n = 0
        while n < len(chunks) and starts[n] + len(chunks[n]) <= upto:
            n += 1
        if n:
            del starts[:n], chunks[:n]
        self.start = upto
