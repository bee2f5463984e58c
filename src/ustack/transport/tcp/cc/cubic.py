# SPDX-License-Identifier: MIT
"""CUBIC (RFC 9438) with HyStart++ slow start (RFC 9406).

Windows are kept in bytes, as everywhere in ustack; the cubic function itself
works in segments (RFC 9438's units for C), and :func:`w_cubic` is the pure
formula the tests compare the window with.
"""

from __future__ import annotations

import math

from ustack.transport.tcp.cc.base import AckSample, CongestionControl

C = 0.4  # RFC 9438 4.2: segments / s^3
BETA = 0.7  # RFC 9438 4.6: multiplicative decrease factor
ALPHA = 3 * (1 - BETA) / (1 + BETA)  # RFC 9438 4.3: the Reno-friendly additive increase

# RFC 9406 4.3: HyStart++ constants
MIN_RTT_THRESH = 0.004
MAX_RTT_THRESH = 0.016
MIN_RTT_DIVISOR = 8
N_RTT_SAMPLE = 8
CSS_GROWTH_DIVISOR = 4
CSS_ROUNDS = 5
L_UNPACED = 8  # segments per ACK in slow start; infinite when paced


def cubic_k(w_max: float, cwnd_epoch: float) -> float:
    """RFC 9438 eq. 2: the time (s) the cubic function takes to reach W_max (segments)."""
    return math.copysign(abs((w_max - cwnd_epoch) / C) ** (1 / 3), w_max - cwnd_epoch)


def w_cubic(t: float, w_max: float, k: float) -> float:
    """RFC 9438 eq. 1: W_cubic(t) = C*(t-K)^3 + W_max (segments)."""
    return C * (t - k) ** 3 + w_max


def rtt_thresh(last_round_min_rtt: float) -> float:
    """RFC 9406 4.2: the delay increase that ends slow start, clamped to [4, 16] ms."""
    return max(MIN_RTT_THRESH, min(last_round_min_rtt / MIN_RTT_DIVISOR, MAX_RTT_THRESH))


class HyStartPP:
    """RFC 9406: leave slow start when the RTT grows by a round's threshold, through
    Conservative Slow Start (CSS) rounds. Rounds are counted on delivered data (a round
    ends when a segment sent after it began is delivered), equivalent to the RFC's
    windowEnd = SND.NXT."""

    def __init__(self) -> None:
        self.last_round_min_rtt = math.inf
        self.current_round_min_rtt = math.inf
        self.samples = 0
        self.round_end_delivered = 0
        self.css_baseline = math.inf
        self.css_rounds = 0
        self.in_css = False
        self.done = False  # slow start is over (CSS completed): congestion avoidance
        self.exits = 0  # times delay increase moved slow start into CSS

    def on_round_end(self, delivered: int) -> None:
        self.last_round_min_rtt = self.current_round_min_rtt
        self.current_round_min_rtt = math.inf
        self.samples = 0
        self.round_end_delivered = delivered
        if self.in_css:
            self.css_rounds += 1
            if self.css_rounds >= CSS_ROUNDS:
                self.in_css = False
                self.done = True

    def on_rtt(self, rtt: float) -> None:
        """One RTT sample in slow start or CSS (RFC 9406 4.2)."""
        if rtt <= 0:
            return
        self.current_round_min_rtt = min(self.current_round_min_rtt, rtt)
        self.samples += 1
        if self.samples < N_RTT_SAMPLE or self.current_round_min_rtt == math.inf or \
                self.last_round_min_rtt == math.inf:
            return
        if not self.in_css:
            if self.current_round_min_rtt >= self.last_round_min_rtt + \
                    rtt_thresh(self.last_round_min_rtt):
                self.css_baseline = self.current_round_min_rtt
                self.in_css = True
                self.css_rounds = 0
                self.exits += 1
        elif self.current_round_min_rtt < self.css_baseline:
            # the increase was spurious: back to slow start
            self.css_baseline = math.inf
            self.in_css = False

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


class Cubic(CongestionControl):
    name = "cubic"
    wants_samples = True

    def __init__(self, mss: int) -> None:
        super().__init__(mss)
        self.w_max = 0.0  # segments
        self.k = 0.0
        self.epoch_start = -1.0  # -1: no congestion-avoidance epoch running
        self.cwnd_epoch = 0.0
        self.w_est = 0.0  # RFC 9438 4.3 Reno-friendly estimate (segments)
        self.fast_convergence = True
        self.hystart = HyStartPP()
        self._min_rtt = 0.0
        self._ca_acked = 0  # bytes acked toward the next window step

    # --- slow start and HyStart++ ------------------------------------------------------------

    def on_sample(self, sample: AckSample) -> None:
        hs = self.hystart
        rs = sample.rs
        if sample.min_rtt:
            self._min_rtt = sample.min_rtt
        if rs.prior_time and rs.prior_delivered >= hs.round_end_delivered:
            hs.on_round_end(sample.delivered)
            if hs.done and self.in_slow_start:
                self.ssthresh = self.cwnd  # RFC 9406 4.2: CSS_ROUNDS done -> avoidance
        if self.in_slow_start and not sample.in_recovery and not hs.done:
            hs.on_rtt(sample.rtt)

    def on_ack(self, acked: int, now: float, rtt: float, inflight: int) -> None:
        mss = self.mss
        if self.in_slow_start:
            limit = acked if self.paced else min(acked, L_UNPACED * mss)
            # RFC 9406 4.2: in CSS the window grows by a quarter of slow start's pace
            self.cwnd += limit // CSS_GROWTH_DIVISOR if self.hystart.in_css else limit
            return
        self._avoidance(acked, now, rtt)

    def _avoidance(self, acked: int, now: float, rtt: float) -> None:
        """RFC 9438 4.2-4.5, per ACK, in segments."""
        mss = self.mss
        cwnd = self.cwnd / mss
        if self.epoch_start < 0:
            # RFC 9438 4.2: a new epoch on the first ACK of congestion avoidance
            self.epoch_start = now
            self.cwnd_epoch = cwnd
            if self.w_max < cwnd:
                self.w_max = cwnd  # no congestion event yet: the plateau is here
            self.k = cubic_k(self.w_max, cwnd)
            self.w_est = cwnd
        t = now - self.epoch_start
        rtt = rtt or self._min_rtt or 0.1
        # RFC 9438 4.4-4.5: aim for W_cubic one RTT ahead, clamped to [cwnd, 1.5 cwnd]
        target = min(max(w_cubic(t + rtt, self.w_max, self.k), cwnd), 1.5 * cwnd)
        # RFC 9438 4.3: the Reno-friendly estimate, alpha_cubic segments per window
        segs = acked / mss
        self.w_est += ALPHA * segs / cwnd if self.w_est < self.w_max else segs / cwnd
        if w_cubic(t, self.w_max, self.k) < self.w_est:
            new = self.w_est  # Reno-friendly region
        else:
            new = cwnd + (target - cwnd) * segs / cwnd  # concave / convex region
        self.cwnd = max(int(new * mss), self.cwnd)

    # --- congestion events ------------------------------------------------------------------

    def _reduce(self) -> None:
        """RFC 9438 4.6-4.7: remember W_max (with fast convergence), cut by beta."""
        cwnd = self.cwnd / self.mss
        if self.fast_convergence and cwnd < self.w_max:
            self.w_max = cwnd * (1 + BETA) / 2
        else:
            self.w_max = cwnd
        self.epoch_start = -1.0
        self.ssthresh = max(int(self.cwnd * BETA), 2 * self.mss)
        self.hystart.done = True  # a loss ends slow start for good

    def on_congestion(self, inflight: int, now: float) -> None:
        self._reduce()
        self.cwnd = self.ssthresh

    def on_timeout(self, inflight: int, now: float) -> None:
        """RFC 9438 4.8: the same reduction, then the loss window of one segment."""
        self._reduce()
        self.cwnd = self.mss
