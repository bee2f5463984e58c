# SPDX-License-Identifier: MIT
"""SACK-based loss recovery (RFC 6675), conservative: sends are bounded by cwnd - pipe."""

from __future__ import annotations

from ustack.transport.tcp.recovery.base import DUPTHRESH, AckEvent, LossRecovery


class SACKRecovery(LossRecovery):
    name = "rfc6675"

    def on_ack(self, event: AckEvent) -> None:
        s = self.sender
        if event.acked:
            self.dupacks = 0
        elif event.dupack:
            self.dupacks += 1
        if event.sacked:
            s.sendmap.mark_lost_by_sack(DUPTHRESH, s.mss)
        if self.in_recovery:
            if s.snd_una >= self.recovery_point:  # RFC 6675 section 5, step (A) exit
                self._exit(event.now)
            return
        if s.snd_una < self.recovery_point and not s.sendmap.segments:
            return
        # RFC 6675 section 5: enter on DupThresh duplicates or when IsLost(HighACK + 1),
        # but not again for losses in the window that already caused a reduction.
        head = s.sendmap.segments[0] if s.sendmap.segments else None
        head_lost = head is not None and head.lost
        if (self.dupacks >= DUPTHRESH or head_lost) and s.snd_una >= self.recovery_point:
            self._enter(event.now)
