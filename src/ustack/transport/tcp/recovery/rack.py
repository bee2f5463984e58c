# SPDX-License-Identifier: MIT
"""RACK-TLP loss detection (RFC 8985) with Proportional Rate Reduction (RFC 6937).

RACK ("recent acknowledgment") declares a segment lost when a segment sent
*after* it was delivered and more than a reordering window has passed: time,
not duplicate-ACK counting. The window starts at min_RTT/4, is zero until
reordering is seen (so a plain loss is repaired as fast as by DupThresh), and
grows with each round that brings a D-SACK (a spurious retransmission).
TLP ("tail loss probe") sends one segment two RTTs after the last transmission
when no ACK comes, so a loss at the tail of a flight draws SACK feedback and
is repaired by fast recovery instead of a retransmission timeout.

:class:`Rack` is the pure part (RFC 8985 section 6 over segments and times);
:class:`RACKRecovery` is the loss-recovery strategy that owns the RACK timer,
the PTO and PRR, and drives the sender.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ustack.clock import Clock
from ustack.transport.tcp.recovery.base import DUPTHRESH, AckEvent, LossRecovery
from ustack.transport.tcp.recovery.prr import PRR
from ustack.transport.tcp.timers import TimerSlot

if TYPE_CHECKING:
    from ustack.transport.tcp.sender import Sender
    from ustack.transport.tcp.sendmap import SentSegment

REO_WND_PERSIST = 16  # RFC 8985 6.2 step 4: DSACK-free recoveries before the window resets
WC_DEL_ACK = 0.2  # RFC 8985 7.2: worst-case delayed-ACK timer for a one-segment flight
PTO_FLOOR = 0.01  # never probe sooner than 10 ms (Linux: TCP_TIMEOUT_MIN, 2 jiffies)


def sent_after(t1: float, seq1: int, t2: float, seq2: int) -> bool:
    """RFC 8985 6.2 RACK_sent_after(): was (t1, seq1) sent after (t2, seq2)?"""
    return t1 > t2 or (t1 == t2 and seq1 > seq2)


class Rack:
    """RFC 8985 section 6: the RACK state and its per-ACK steps, free of I/O."""

    def __init__(self) -> None:
        self.xmit_ts = 0.0  # RACK.xmit_ts: send time of the most recently sent delivered seg
        self.end_seq = 0  # RACK.end_seq
        self.rtt = 0.0  # RACK.rtt: the RTT of that segment
        self.fack = 0  # RACK.fack: the highest end_seq delivered
        self.min_rtt = math.inf
        self.reordering_seen = False
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = REO_WND_PERSIST
        self.dsack_round: int | None = None
        self.segs_sacked = 0  # SACKed segments still above SND.UNA
        self.reo_wnd = 0.0  # the window used by the last detection

    # step 1 and 2: the most recently sent delivered segment --------------------------------

    def on_delivered(self, seg: SentSegment, now: float, tsecr_ok: bool = True) -> None:
        """RFC 8985 6.2 step 1 (RACK_update) and step 3 (reordering) for one newly acked
        or SACKed segment."""
        rtt = now - seg.sent_at
        if seg.xmits > 1 and rtt < self.min_rtt - 1e-6:  # (float noise is no evidence)
            # may be the ACK of the original transmission: ignore it (step 1)
            return
        if rtt > 0:
            self.min_rtt = min(self.min_rtt, rtt)
        if sent_after(seg.sent_at, seg.end, self.xmit_ts, self.end_seq):
            self.rtt = rtt
            self.xmit_ts = seg.sent_at
            self.end_seq = seg.end
        # step 3: a never-retransmitted segment delivered below the forward-most one
        if seg.end < self.fack and seg.xmits == 1:
            self.reordering_seen = True
        self.fack = max(self.fack, seg.end)

    # step 4: the reordering window -------------------------------------------------------------

    def update_reo_wnd(self, snd_una: int, snd_nxt: int, dsack: bool, in_recovery: bool,
                       srtt: float) -> float:
        """RFC 8985 6.2 step 4 RACK_update_reo_wnd() (the recovery-exit part is
        :meth:`on_recovery_exit`)."""
        if self.dsack_round is not None and snd_una >= self.dsack_round:
            self.dsack_round = None
        if self.dsack_round is None and dsack:
            # grow the window once per round trip that sees a D-SACK
            self.dsack_round = snd_nxt
            self.reo_wnd_mult += 1
            self.reo_wnd_persist = REO_WND_PERSIST
            self.reordering_seen = True
        self.reo_wnd = self.reo_wnd_for(in_recovery, srtt)
        return self.reo_wnd

    def reo_wnd_for(self, in_recovery: bool, srtt: float) -> float:
        if not self.reordering_seen and (in_recovery or self.segs_sacked >= DUPTHRESH):
            return 0.0
        if self.min_rtt == math.inf:
            return 0.0
        wnd = self.reo_wnd_mult * self.min_rtt / 4
        return min(wnd, srtt) if srtt > 0 else wnd

    def on_recovery_exit(self) -> None:
        """Step 4: reset the window after 16 recoveries without a D-SACK."""
        self.reo_wnd_persist -= 1
        if self.reo_wnd_persist <= 0:
            self.reo_wnd_mult = 1
            self.reo_wnd_persist = REO_WND_PERSIST

    # step 5: detect losses ---------------------------------------------------------------------

    def detect_loss(self, segments: Iterable[SentSegment], now: float,
                    ) -> tuple[list[SentSegment], float]:
        """RFC 8985 6.2 step 5 RACK_detect_loss(): the segments now deemed lost, and how
        long until the next one might be (0.0: none pending)."""
        lost: list[SentSegment] = []
        timeout = 0.0
        if not self.xmit_ts:
            return lost, timeout
        horizon = self.rtt + self.reo_wnd
        xmit_ts, end_seq = self.xmit_ts, self.end_seq
        for seg in segments:
            if seg.sacked or (seg.lost and not seg.retransmitted):
                continue  # delivered, or marked and waiting ("xmit_ts = INFINITE_TS")
            if not sent_after(xmit_ts, end_seq, seg.sent_at, seg.end):
                continue
            remaining = seg.sent_at + horizon - now
            if remaining <= 1e-9:
                lost.append(seg)
            else:
                timeout = max(timeout, remaining)
        return lost, timeout


class RACKRecovery(LossRecovery):
    """The ``rack`` stack's loss recovery: RACK-TLP detection, PRR during recovery."""

    name = "rack"
    wants_segments = True

    def __init__(self, sender: Sender) -> None:
        super().__init__(sender)
        self.rack = Rack()
        self.prr: PRR | None = None
        self._prr_out_base = 0  # bytes_sent + bytes_retrans when recovery began
        self._sndcnt = 0  # PRR's allowance from the latest ACK ...
        self._sndcnt_base = 0  # ... counted from this many bytes sent
        self.rto_recovery = False
        # TLP (RFC 8985 section 7)
        self.tlp_end: int | None = None
        self.tlp_is_retrans = False
        self.tlp_probes = 0
        self.tlp_recoveries = 0
        self.rack_timeouts = 0
        self.marked_lost = 0
        clock: Clock = sender.ep.stack.clock
        self.reo_timer = TimerSlot(clock, self._on_reo_timer)
        self.pto_timer = TimerSlot(clock, self._on_pto)

    # --- the ACK path ---------------------------------------------------------------------------

    def on_ack(self, event: AckEvent) -> None:
        s = self.sender
        rack = self.rack
        now = event.now
        for seg in event.acked_segments:
            if not seg.sacked:
                rack.on_delivered(seg, now)
        for seg in event.sacked_segments:
            rack.on_delivered(seg, now)
        sm = s.sendmap
        rack.segs_sacked = sm.sacked_bytes // max(s.mss, 1)
        if s.rtt.min_rtt:
            rack.min_rtt = min(rack.min_rtt, s.rtt.min_rtt)
        self._tlp_on_ack(event)
        if self.rto_recovery and s.snd_una >= self.recovery_point:
            self.rto_recovery = False
        rack.update_reo_wnd(s.snd_una, s.snd_nxt, event.dsack,
                            self.in_recovery or self.rto_recovery, s.rtt.srtt)
        self._detect(now)
        if self.in_recovery:
            if s.snd_una >= self.recovery_point:
                self._exit_recovery(now)
            else:
                self._prr_ack(event.acked + event.sacked)
        if s.snd_una == s.snd_max:
            self.reo_timer.cancel()
        self._arm_pto(after_ack=event.acked > 0)

    def _detect(self, now: float) -> None:
        """RACK_detect_loss_and_arm_timer(), then fast recovery on a new loss."""
        s = self.sender
        sm = s.sendmap
        if not sm.segments:
            self.reo_timer.cancel()
            return
        lost, timeout = self.rack.detect_loss(sm.segments, now)
        for seg in lost:
            if seg.lost:
                sm.mark_retransmission_lost(seg)  # a lost retransmission (RFC 8985 6.2)
            else:
                sm.mark_lost(seg)
        if lost:
            self.marked_lost += len(lost)
            if not self.in_recovery and not self.rto_recovery and \
                    s.snd_una >= self.recovery_point:
                self._enter_recovery(now)
        if timeout > 0:
            self.reo_timer.set(timeout)
        else:
            self.reo_timer.cancel()

    def _on_reo_timer(self) -> None:
        """RFC 8985 6.3: the reordering window ran out for a segment: detect again."""
        s = self.sender
        if not s.ep.can_send_data() or s.snd_una >= s.snd_max:
            return
        self.rack_timeouts += 1
        s.stats.count("tcp.rack_timeouts")
        marked = self.marked_lost
        self.rack.reo_wnd = self.rack.reo_wnd_for(self.in_recovery or self.rto_recovery,
                                                  s.rtt.srtt)
        self._detect(s.clock.now())
        if self.marked_lost != marked:
            if self.in_recovery and self.prr is not None:
                self._prr_ack(0)
            s.output()
            s.ep.flush_ack()

    # --- fast recovery with PRR -----------------------------------------------------------------

    def _enter_recovery(self, now: float) -> None:
        """RFC 6937: ssthresh from the congestion control, RecoverFS = snd.nxt - snd.una."""
        s = self.sender
        self.in_recovery = True
        self.recoveries += 1
        self.recovery_point = s.snd_max
        s.cc.on_congestion(s.snd_max - s.snd_una, now)
        self.prr = PRR(s.cc.ssthresh, s.snd_max - s.snd_una, s.mss)
        self._prr_out_base = s.bytes_sent + s.bytes_retrans
        self._sndcnt = 0
        self._sndcnt_base = self._prr_out_base
        self.pto_timer.cancel()
        s.stats.count("tcp.fast_recovery")

    def _prr_ack(self, delivered: int) -> None:
        s = self.sender
        prr = self.prr
        if prr is None:
            return
        out = s.bytes_sent + s.bytes_retrans
        prr.prr_out = out - self._prr_out_base
        pipe = s.sendmap.pipe(s.snd_max - s.snd_una)
        sndcnt = prr.on_ack(delivered, pipe)
        if prr.prr_out == 0:
            sndcnt = max(sndcnt, s.mss)  # the fast retransmission itself (as Linux)
        self._sndcnt = sndcnt
        self._sndcnt_base = out

    def _exit_recovery(self, now: float) -> None:
        s = self.sender
        self.in_recovery = False
        self.prr = None
        self.rack.on_recovery_exit()
        if s.cc.controls_recovery:
            s.cc.on_recovery_exit(s.snd_max - s.snd_una, now)
        elif s.cc.ssthresh < (1 << 61):
            s.cc.cwnd = s.cc.ssthresh  # RFC 6937: "on exit, cwnd = ssthresh"

    def allowance(self) -> int:
        s = self.sender
        if self.in_recovery and self.prr is not None and not s.cc.controls_recovery:
            return self._sndcnt - (s.bytes_sent + s.bytes_retrans - self._sndcnt_base)
        return s.cc.cwnd - s.sendmap.pipe(s.snd_max - s.snd_una)

    def on_timeout(self) -> None:
        self.pto_timer.cancel()
        self.reo_timer.cancel()
        self.tlp_end = None
        self.prr = None
        super().on_timeout()
        self.rto_recovery = True

    # --- tail loss probes (RFC 8985 section 7) ---------------------------------------------------

    def after_send(self) -> None:
        """New data went out: (re)start the PTO (RFC 8985 7.2)."""
        self._arm_pto(after_ack=False)

    def _arm_pto(self, after_ack: bool) -> None:
        s = self.sender
        if self.in_recovery or self.rto_recovery or s.snd_una >= s.snd_max or \
                s.sendmap.sacked_bytes or self.tlp_end is not None:
            # RFC 8985 7.2: not in recovery, not with SACKed data (RACK's timer handles
            # that), and one probe per episode
            self.pto_timer.cancel()
            return
        now = s.clock.now()
        srtt = s.rtt.srtt
        if srtt:
            pto = 2 * srtt
            if s.snd_max - s.snd_una <= s.mss:
                pto += WC_DEL_ACK
        else:
            pto = 1.0
        pto = max(pto, PTO_FLOOR)
        rto_at = s.ep.rto_timer.deadline
        if rto_at is None or after_ack:
            rto_at = now + s.current_rto()  # restarted by this ACK
        # RFC 8985 7.2: never later than the RTO. The probe takes the RTO's place when
        # they coincide (a one-segment flight: 2*SRTT + WCDelAckT), as Linux's one timer
        # does, so it is due one wheel slot before the RTO.
        self.pto_timer.set_at(min(now + pto, rto_at - 2 * s.clock.wheel.resolution))

    def _on_pto(self) -> None:
        """RFC 8985 7.3 TLP_send_probe()."""
        s = self.sender
        if not s.ep.can_send_data() or s.snd_una >= s.snd_max or self.in_recovery or \
                self.tlp_end is not None:
            return
        retrans = s.send_probe()
        if retrans is None:
            return
        self.tlp_end = s.snd_max
        self.tlp_is_retrans = retrans
        self.tlp_probes += 1
        s.stats.count("tcp.tlp_probes")
        s.arm_rto()  # RFC 8985 7.3: the RTO covers the probe
        s.ep.flush_ack()

    def _tlp_on_ack(self, event: AckEvent) -> None:
        """RFC 8985 7.4 (Linux tcp_process_tlp_ack): did the probe repair a loss?"""
        end = self.tlp_end
        s = self.sender
        if end is None or s.snd_una < end:
            return
        if not self.tlp_is_retrans or event.dsack:
            self.tlp_end = None  # new data, or both copies arrived: no loss
            return
        if s.snd_una > end:
            # the probe repaired a loss: reduce the window once, as for fast recovery
            self.tlp_end = None
            self.tlp_recoveries += 1
            s.stats.count("tcp.tlp_recoveries")
            if not s.cc.controls_recovery:
                s.cc.on_congestion(s.snd_max - s.snd_una, event.now)
                s.cc.cwnd = max(s.cc.ssthresh, 2 * s.mss)
        elif event.acked:
            # the probe's own ACK: wait for more (a D-SACK clears it, new data counts it)
            return
        elif not event.sacked:
            self.tlp_end = None  # a pure duplicate: original and probe both arrived

    # --- stack switches --------------------------------------------------------------------------

    def adopt(self, old: LossRecovery) -> None:
        super().adopt(old)
        s = self.sender
        if self.in_recovery:
            self.prr = PRR(s.cc.ssthresh, s.snd_max - s.snd_una, s.mss)
            self._prr_out_base = self._sndcnt_base = s.bytes_sent + s.bytes_retrans

    def detach(self) -> None:
        self.reo_timer.stop()
        self.pto_timer.stop()

    # --- reporting -------------------------------------------------------------------------------

    @property
    def reo_wnd(self) -> float:
        return self.rack.reo_wnd
