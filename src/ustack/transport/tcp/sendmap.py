# SPDX-License-Identifier: MIT
"""The send map: every segment in flight with its transmit history and SACK state.

It is the RFC 6675 scoreboard (SACKed and lost ranges, ``pipe``) and keeps the
per-segment transmit times that RTT sampling, delivery-rate estimation and
(later) RACK need. Segments tile ``[snd_una, snd_max)`` in order; SACK blocks
split them at block edges. Sequence numbers are unwrapped ints (see seqnum.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator


class SentSegment:
    __slots__ = ("app_limited", "delivered", "delivered_time", "end", "first_sent_time",
                 "lost", "retransmitted", "sacked", "sent_at", "start", "xmits")

    def __init__(self, start: int, end: int, now: float) -> None:
        self.start = start
        self.end = end
        self.sent_at = now
        self.xmits = 1
        self.sacked = False
        self.lost = False
        self.retransmitted = False  # retransmitted since it was last marked lost
        # delivery-rate snapshot (draft-cheng-iccrg-delivery-rate-estimation 3.2)
        self.delivered = 0
        self.delivered_time = 0.0
        self.first_sent_time = 0.0
        self.app_limited = False

    @property
    def length(self) -> int:
        return self.end - self.start

    def split(self, at: int) -> SentSegment:
        """Cut at ``at``; this keeps the front, the returned copy is the back."""
        back = SentSegment(at, self.end, self.sent_at)
        for name in ("xmits", "sacked", "lost", "retransmitted", "delivered",
                     "delivered_time", "first_sent_time", "app_limited"):
            setattr(back, name, getattr(self, name))
        self.end = at
        return back

    def __repr__(self) -> str:
        flags = "".join(c for c, on in (("S", self.sacked), ("L", self.lost),
                                        ("R", self.retransmitted)) if on)
        return f"<{self.start}-{self.end} x{self.xmits} {flags}>"


class SendMap:
    def __init__(self) -> None:
        self.segments: list[SentSegment] = []
        self.sacked_bytes = 0
        self.lost_bytes = 0  # lost and not SACKed
        self.retrans_bytes = 0  # lost, retransmitted, not yet SACKed or acked
        self.highest_sacked = 0
        self._lost_scan_floor = 0  # below this every unSACKed segment is already marked
        self.lost_total = 0  # bytes ever marked lost (BBR's per-ACK "newly lost")

    def __len__(self) -> int:
        return len(self.segments)

    def __iter__(self) -> Iterator[SentSegment]:
        return iter(self.segments)

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    # --- transmission ----------------------------------------------------------------------

    def append(self, start: int, end: int, now: float) -> SentSegment:
        seg = SentSegment(start, end, now)
        self.segments.append(seg)
        return seg

    def find(self, seq: int) -> int:
        """Index of the segment holding ``seq`` (or where it would be)."""
        i = bisect.bisect_right(self.segments, seq, key=lambda s: s.start) - 1
        return max(i, 0)

    def on_retransmit(self, seg: SentSegment, now: float) -> None:
        seg.xmits += 1
        seg.sent_at = now
        if seg.lost and not seg.retransmitted:
            seg.retransmitted = True
            self.retrans_bytes += seg.length

    # --- acknowledgment --------------------------------------------------------------------

    def ack(self, una: int) -> list[SentSegment]:
        """Remove everything below ``una``; returns the fully acked segments (in order)."""
        segs = self.segments
        n = 0
        for seg in segs:
            if seg.end > una:
                break
            n += 1
        done = segs[:n]
        del segs[:n]
        for seg in done:
            self._forget(seg)
        if segs and segs[0].start < una:  # a partially acked segment: trim its front
            head = segs[0]
            cut = una - head.start
            if head.sacked:
                self.sacked_bytes -= cut
            elif head.lost:
                self.lost_bytes -= cut
                if head.retransmitted:
                    self.retrans_bytes -= cut
            head.start = una
        return done

    def _forget(self, seg: SentSegment) -> None:
        if seg.sacked:
            self.sacked_bytes -= seg.length
        elif seg.lost:
            self.lost_bytes -= seg.length
            if seg.retransmitted:
                self.retrans_bytes -= seg.length

    def sack(self, blocks: list[tuple[int, int]]) -> list[SentSegment]:
        """Mark SACKed ranges (RFC 6675 "Update()"); returns newly SACKed segments."""
        newly: list[SentSegment] = []
        segs = self.segments
        for left, right in blocks:
            if not segs or right <= segs[0].start or left >= segs[-1].end:
                continue
            i = self.find(left)
            while i < len(segs) and segs[i].start < right:
                seg = segs[i]
                if seg.end <= left or seg.sacked:
                    i += 1
                    continue
                if seg.start < left:
                    segs.insert(i + 1, seg.split(left))
                    i += 1
                    continue
                if seg.end > right:
                    segs.insert(i + 1, seg.split(right))
                if seg.lost:
                    self.lost_bytes -= seg.length
                    if seg.retransmitted:
                        self.retrans_bytes -= seg.length
                    seg.lost = False
                    seg.retransmitted = False
                seg.sacked = True
                self.sacked_bytes += seg.length
                self.highest_sacked = max(self.highest_sacked, seg.end)
                newly.append(seg)
                i += 1
        return newly

    # --- loss ------------------------------------------------------------------------------

    def mark_lost_by_sack(self, dupthresh: int, mss: int) -> int:
        """RFC 6675 IsLost(): unSACKed data with DupThresh SACKed segments, or more than
        (DupThresh-1)*SMSS SACKed bytes, above it. Returns the bytes newly marked lost."""
        sacked_above = 0
        sacked_count = 0
        newly = 0
        floor = self._lost_scan_floor
        for seg in reversed(self.segments):
            if seg.end <= floor:
                break
            if seg.sacked:
                sacked_above += seg.length
                sacked_count += max(1, seg.length // mss)
                continue
            if seg.lost:
                continue
            if sacked_count >= dupthresh or sacked_above > (dupthresh - 1) * mss:
                seg.lost = True
                self.lost_bytes += seg.length
                newly += seg.length
        if newly:
            self.lost_total += newly
            first_unmarked = next((s for s in self.segments if not s.sacked and not s.lost), None)
            self._lost_scan_floor = first_unmarked.start if first_unmarked else floor
        return newly

    def mark_lost(self, seg: SentSegment) -> None:
        """Mark one segment lost (NewReno's partial ACK, the snd_una segment on dupacks)."""
        if seg.sacked or seg.lost:
            return
        seg.lost = True
        seg.retransmitted = False
        self.lost_bytes += seg.length
        self.lost_total += seg.length

    def mark_retransmission_lost(self, seg: SentSegment) -> None:
        """A retransmission of a lost segment was lost too (RACK, RFC 8985 6.2 step 5):
        it is due to be sent again."""
        if seg.sacked or not seg.lost or not seg.retransmitted:
            return
        seg.retransmitted = False
        self.retrans_bytes -= seg.length
        self.lost_total += seg.length

    def mark_all_lost(self) -> None:
        """After an RTO every unSACKed segment is presumed lost and is sent again."""
        self.lost_total += sum(s.length for s in self.segments
                               if not s.sacked and (not s.lost or s.retransmitted))
        self.lost_bytes = 0
        self.retrans_bytes = 0
        for seg in self.segments:
            if not seg.sacked:
                seg.lost = True
                seg.retransmitted = False
                self.lost_bytes += seg.length
        self._lost_scan_floor = 0

    def clear_sacks(self) -> None:
        """The receiver reneged (RFC 2018 section 8): forget SACK state."""
        for seg in self.segments:
            seg.sacked = False
        self.sacked_bytes = 0
        self.highest_sacked = 0
        self._lost_scan_floor = 0

    def next_lost(self) -> SentSegment | None:
        """RFC 6675 NextSeg() rule 1: the first lost segment not yet retransmitted."""
        if self.lost_bytes <= self.retrans_bytes:
            return None
        for seg in self.segments:
            if seg.lost and not seg.retransmitted:
                return seg
        return None

    def pipe(self, outstanding: int) -> int:
        """RFC 6675 SetPipe(): bytes presumed in the network."""
        return outstanding - self.sacked_bytes - self.lost_bytes + self.retrans_bytes
