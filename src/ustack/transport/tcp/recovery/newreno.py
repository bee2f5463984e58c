# SPDX-License-Identifier: MIT
"""NewReno fast retransmit and fast recovery for peers without SACK (RFC 6582)."""

from __future__ import annotations

from ustack.transport.tcp.recovery.base import DUPTHRESH, AckEvent, LossRecovery


class NewRenoRecovery(LossRecovery):
    name = "newreno"

    def on_ack(self, event: AckEvent) -> None:
        s = self.sender
        mss = s.mss
        if self.in_recovery:
            if event.acked == 0:
                if event.dupack:
                    s.cc.cwnd += mss  # RFC 6582 3.2 step 4: inflate per duplicate
                return
            if s.snd_una >= self.recovery_point:  # step 3: full acknowledgment
                self._exit(event.now)
                return
            # Step 5: a partial acknowledgment retransmits the next hole at once and
            # deflates the window by the amount acked, adding back one SMSS.
            if s.sendmap.segments:
                s.sendmap.mark_lost(s.sendmap.segments[0])
                self.retransmit_now = True
            s.cc.cwnd = max(s.cc.cwnd - event.acked + (mss if event.acked >= mss else 0), mss)
            return
        if event.acked:
            self.dupacks = 0
            return
        if not event.dupack:
            return
        self.dupacks += 1
        # Step 2: three duplicates, and the ACK covers more than "recover".
        if self.dupacks == DUPTHRESH and s.snd_una > self.recovery_point - 1:
            self._enter(event.now)
            s.cc.cwnd = s.cc.ssthresh + DUPTHRESH * mss

    def allowance(self) -> int:
        s = self.sender
        if self.in_recovery:
            # RFC 6582: FlightSize against the inflated window (the dupacks count the
            # segments that left the network); the retransmission itself is forced.
            return s.cc.cwnd - (s.snd_max - s.snd_una)
        return super().allowance()
