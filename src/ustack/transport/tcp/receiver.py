# SPDX-License-Identifier: MIT
"""The receive side: rcv_nxt, the receive buffer, the out-of-order queue, SACK blocks
(RFC 2018, D-SACK RFC 2883), the advertised window with receiver-side silly window
avoidance (RFC 9293 3.8.6.2.2) and receive-buffer auto-tuning."""

from __future__ import annotations

import bisect
from collections import deque
from typing import NamedTuple

MAX_OOO_SEGMENTS = 2048


class Received(NamedTuple):
    """What one segment's data did."""

    in_order: int  # bytes appended to the receive buffer (incl. ones freed from the OOO queue)
    out_of_order: bool  # data was queued beyond a hole
    filled_hole: bool  # this segment let queued data move into the buffer
    duplicate: tuple[int, int] | None  # a D-SACK range, if any of it was already received
    fin: bool  # the FIN is now in order (consumed: rcv_nxt moved past it)


class Receiver:
    def __init__(self, rcvbuf: int, mss: int, rcvbuf_max: int) -> None:
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0  # right edge of the window we last advertised
        self.rcvbuf = rcvbuf
        self.rcvbuf_max = rcvbuf_max
        self.mss = mss
        self.wscale = 0  # our receive window shift (sent in our SYN)
        self.policy = "rfc"  # how window() sizes the window: "rfc" or "freebsd"
        self.seg_mss = mss  # the connection's segment size, once negotiated
        self.buffer: deque[memoryview] = deque()
        self.buffered = 0
        self._ooo_starts: list[int] = []
        self._ooo: list[tuple[int, int, memoryview, bool]] = []  # (start, end, data, fin)
        self.ooo_bytes = 0
        self._recent: list[int] = []  # starts of recently received OOO data, newest first
        self.fin_received = False
        self.bytes_received = 0
        # auto-tuning (dynamic right-sizing): bytes the application read per RTT
        self._tune_start = 0.0
        self._tune_read = 0

    def init(self, irs: int) -> None:
        self.irs = irs
        self.rcv_nxt = irs + 1
        self.rcv_adv = self.rcv_nxt

    # --- window -------------------------------------------------------------------------

    def space(self) -> int:
        return max(0, self.rcvbuf - self.buffered - self.ooo_bytes)

    def window(self, scaled: bool = True) -> int:
        """The window to advertise now, never growing by a silly amount (RFC 9293
        3.8.6.2.2). With a scale it is rounded *down* to whole units: rounding up would
        promise buffer we lack, and, since the right edge never moves back, the excess
        would pile up ACK after ACK. The edge may then seem to retract by less than one
        unit, as RFC 7323 2.4 foresees; what we promised before (``rcv_adv``) is still
        accepted (:meth:`acceptable_end`)."""
        if self.policy == "freebsd":
            return self._window_freebsd(scaled)
        rcvbuf, nxt, adv = self.rcvbuf, self.rcv_nxt, self.rcv_adv
        right = nxt + rcvbuf - self.buffered if rcvbuf > self.buffered else nxt
        if right - adv < min(rcvbuf // 2, self.mss):
            right = adv if adv > nxt else nxt  # no silly growth; no shrinking
        shift = self.wscale if scaled else 0
        wnd = min(right - nxt, 0xFFFF << shift)
        wnd = (wnd >> shift) << shift
        if nxt + wnd > adv:
            self.rcv_adv = nxt + wnd
        return wnd

    def _window_freebsd(self, scaled: bool) -> int:
        """FreeBSD's tcp_output(): the free buffer space, zero while it is below both a
        quarter of the buffer and one segment (its receiver SWS avoidance), never below
        what was advertised already, and with a scale rounded *up* to a whole unit (so
        the edge never seems to retract)."""
        shift = self.wscale if scaled else 0
        limit = 0xFFFF << shift
        wnd = min(max(0, self.rcvbuf - self.buffered), limit)
        if scaled:
            if wnd < self.rcvbuf // 4 and wnd < self.seg_mss:
                wnd = 0
            wnd = max(wnd, self.rcv_adv - self.rcv_nxt)
            wnd = min(-(-wnd >> shift) << shift, limit)
        self.rcv_adv = max(self.rcv_adv, self.rcv_nxt + wnd)
        return wnd

    def window_field(self, syn: bool = False) -> int:
        """The 16-bit header field (RFC 7323 2.2: a SYN's window is never scaled)."""
        if syn:
            return min(self.window(scaled=False), 0xFFFF)
        return self.window() >> self.wscale

    def receive_window(self, advertised_only: bool = False) -> int:
        """RCV.WND for the acceptability test: the window we advertised; with the
        "freebsd" policy, the free buffer space if that is more (tcp_input's rcv_wnd)."""
        advertised = max(self.rcv_adv - self.rcv_nxt, 0)
        if self.policy == "freebsd" and not advertised_only:
            return max(advertised, self.rcvbuf - self.buffered)
        return advertised

    def acceptable_end(self) -> int:
        """The highest sequence number (exclusive) that the receiver will queue."""
        return max(self.rcv_adv, self.rcv_nxt + self.space())

    # --- data -------------------------------------------------------------------------------

    def receive(self, seq: int, data: memoryview, fin: bool) -> Received:
        """Take a segment's data (seq unwrapped); trims what falls outside the window."""
        end = seq + len(data)
        dsack: tuple[int, int] | None = None
        if seq < self.rcv_nxt:
            dup_end = min(end, self.rcv_nxt)
            if dup_end > seq:
                dsack = (seq, dup_end)
            if end <= self.rcv_nxt:
                return Received(0, False, False, dsack, False)
            data = data[self.rcv_nxt - seq:]
            seq = self.rcv_nxt
        limit = self.acceptable_end()
        if end > limit:
            data = data[:max(0, limit - seq)]
            end = seq + len(data)
            fin = False
        if seq != self.rcv_nxt:
            queued, dup = self._queue(seq, end, data, fin)
            return Received(0, queued, False, dsack or dup, False)
        if data:
            self.buffer.append(data)
            self.buffered += len(data)
            self.bytes_received += len(data)
        self.rcv_nxt = end
        moved = len(data)
        had_ooo = bool(self._ooo)
        fin_now = fin
        if had_ooo and not fin:
            extra, fin_now = self._drain_ooo()
            moved += extra
        if fin_now:
            self.rcv_nxt += 1
            self.fin_received = True
        return Received(moved, False, had_ooo and moved > len(data), dsack, fin_now)

    def _queue(self, seq: int, end: int, data: memoryview,
               fin: bool) -> tuple[bool, tuple[int, int] | None]:
        """Insert the parts of [seq, end) not yet queued; report fully duplicate data."""
        if len(self._ooo) >= MAX_OOO_SEGMENTS:
            return False, None
        pieces: list[tuple[int, int]] = []
        cursor = seq
        i = max(0, bisect.bisect_right(self._ooo_starts, seq) - 1)
        while i < len(self._ooo) and cursor < end:
            s, e, _d, _f = self._ooo[i]
            if e <= cursor:
                i += 1
                continue
            if s > cursor:
                pieces.append((cursor, min(s, end)))
            cursor = max(cursor, e)
            i += 1
        if cursor < end:
            pieces.append((cursor, end))
        if not pieces and not fin:
            return False, (seq, end) if end > seq else None
        for s, e in pieces:
            last = e == end
            self._insert(s, e, data[s - seq:e - seq], fin and last)
        if fin and not pieces:
            self._insert(end, end, data[len(data):], True)
        self._recent = [seq, *[r for r in self._recent if r != seq][:7]]
        return True, None

    def _insert(self, start: int, end: int, data: memoryview, fin: bool) -> None:
        i = bisect.bisect_left(self._ooo_starts, start)
        self._ooo_starts.insert(i, start)
        self._ooo.insert(i, (start, end, data, fin))
        self.ooo_bytes += end - start

    def _drain_ooo(self) -> tuple[int, bool]:
        moved = 0
        while self._ooo and self._ooo[0][0] <= self.rcv_nxt:
            start, end, data, fin = self._ooo.pop(0)
            self._ooo_starts.pop(0)
            self.ooo_bytes -= end - start
            if end > self.rcv_nxt:
                data = data[self.rcv_nxt - start:]
                self.buffer.append(data)
                self.buffered += len(data)
                self.bytes_received += len(data)
                moved += len(data)
                self.rcv_nxt = end
            if fin and end >= self.rcv_nxt:
                return moved, True
        return moved, False

    def sack_blocks(self, limit: int) -> list[tuple[int, int]]:
        """RFC 2018 4: the block with the newest segment first, then other recent ones."""
        if not self._ooo:
            return []
        runs: list[list[int]] = []
        for start, end, _d, _f in self._ooo:
            if runs and start <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], end)
            else:
                runs.append([start, end])
        blocks: list[tuple[int, int]] = []
        for seq in self._recent:
            for run in runs:
                block = (run[0], run[1])
                if run[0] <= seq < run[1] or seq == run[0]:
                    if block not in blocks:
                        blocks.append(block)
                    break
            if len(blocks) >= limit:
                return blocks
        for run in reversed(runs):
            block = (run[0], run[1])
            if block not in blocks:
                blocks.append(block)
            if len(blocks) >= limit:
                break
        return blocks

    def has_out_of_order(self) -> bool:
        return bool(self._ooo)

    def drop_out_of_order(self) -> int:
        """Renege on queued data under memory pressure (RFC 2018 8 allows it)."""
        dropped = self.ooo_bytes
        self._ooo.clear()
        self._ooo_starts.clear()
        self.ooo_bytes = 0
        return dropped

    # --- the application side -------------------------------------------------------------

    def read(self, limit: int, peek: bool = False) -> bytes:
        """Up to ``limit`` bytes from the receive buffer (b"" when empty)."""
        if not self.buffer or limit <= 0:
            return b""
        first = self.buffer[0]
        if len(first) >= limit or len(self.buffer) == 1:
            out = bytes(first[:limit])
            if not peek:
                if len(first) > limit:
                    self.buffer[0] = first[limit:]
                else:
                    self.buffer.popleft()
        else:
            parts = []
            taken = 0
            for view in self.buffer:
                piece = view[:limit - taken]
                parts.append(piece)
                taken += len(piece)
                if taken >= limit:
                    break
            out = b"".join(parts)
            if not peek:
                self._consume(len(out))
        if not peek:
            self.buffered -= len(out)
            self._tune_read += len(out)
        return out

    def _consume(self, n: int) -> None:
        buf = self.buffer
        while n:
            head = buf[0]
            if len(head) <= n:
                buf.popleft()
                n -= len(head)
            else:
                buf[0] = head[n:]
                n = 0

    def autotune(self, now: float, srtt: float) -> None:
        """Dynamic right-sizing: let the buffer hold twice what the application reads per RTT."""
        if srtt <= 0:
            return
        if now - self._tune_start < srtt:
            return
        want = 2 * self._tune_read
        if want > self.rcvbuf:
            self.rcvbuf = min(self.rcvbuf_max, max(want, self.rcvbuf * 2))
        self._tune_start = now
        self._tune_read = 0
