# SPDX-License-Identifier: MIT
"""BBR v1 (draft-cardwell-iccrg-bbr-congestion-control-00; Linux tcp_bbr.c).

A model of the path: the bottleneck bandwidth (a windowed max of delivery-rate
samples over 10 rounds) and the round-trip propagation time (a windowed min of
RTT samples over 10 s). The state machine STARTUP -> DRAIN -> PROBE_BW (gain
cycling) with PROBE_RTT every 10 s sets a pacing rate and a window around the
estimated BDP. The rate samples come from the sender's delivery-rate estimator
(draft-cheng-iccrg-delivery-rate-estimation, rate.py).
"""

from __future__ import annotations

import math
from enum import Enum

from ustack.transport.tcp.cc.base import AckSample, CongestionControl, initial_window

HIGH_GAIN = 2 / math.log(2)  # 2.885: doubles the rate each round in STARTUP (4.3.1.1)
DRAIN_GAIN = 1 / HIGH_GAIN
CWND_GAIN = 2.0
PACING_GAIN_CYCLE = (5 / 4, 3 / 4, 1, 1, 1, 1, 1, 1)  # 4.3.4.3
BTLBW_FILTER_ROUNDS = 10
RTPROP_FILTER_LEN = 10.0
PROBE_RTT_DURATION = 0.2
MIN_PIPE_SEGMENTS = 4  # BBRMinPipeCwnd
FULL_BW_THRESH = 1.25
FULL_BW_COUNT = 3
PACING_MARGIN = 0.01  # Linux paces 1% below the estimate to drain queues over time


class Mode(Enum):
    STARTUP = "startup"
    DRAIN = "drain"
    PROBE_BW = "probe_bw"
    PROBE_RTT = "probe_rtt"


class MaxFilter:
    """A windowed maximum over ``window`` time units (rounds here), keeping the best,
    second and third best samples of the window (Kathleen Nichols' algorithm, as
    Linux's lib/win_minmax.c)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.s: list[tuple[float, float]] = [(0.0, 0.0)] * 3  # (time, value)

    def get(self) -> float:
        return self.s[0][1]

    def reset(self, t: float, value: float) -> None:
        self.s = [(t, value)] * 3

    def update(self, t: float, value: float) -> float:
        s = self.s
        if value >= s[0][1] or t - s[2][0] > self.window:
            self.reset(t, value)
            return value
        if value >= s[1][1]:
            s[1] = s[2] = (t, value)
        elif value >= s[2][1]:
            s[2] = (t, value)
        # the window moved past the best: promote the others
        dt = t - s[0][0]
        if dt > self.window:
            s[0], s[1], s[2] = s[1], s[2], (t, value)
            if t - s[0][0] > self.window:
                s[0], s[1] = s[1], s[2]
        elif s[1][0] == s[0][0] and dt > self.window / 4:
            s[1] = s[2] = (t, value)
        elif s[2][0] == s[1][0] and dt > self.window / 2:
            s[2] = (t, value)
        return s[0][1]


class BBR(CongestionControl):
    name = "bbr"
    wants_samples = True
    controls_recovery = True
    needs_pacing = True

    def __init__(self, mss: int) -> None:
        super().__init__(mss)
        self.mode = Mode.STARTUP
        self.btlbw = MaxFilter(BTLBW_FILTER_ROUNDS)
        self.rtprop = math.inf
        self.rtprop_stamp = 0.0
        self.rtprop_expired = False
        self.round_count = 0
        self.round_start = False
        self.next_round_delivered = 0
        self.pacing_gain = HIGH_GAIN
        self.cwnd_gain = HIGH_GAIN
        self.filled_pipe = False
        self.full_bw = 0.0
        self.full_bw_count = 0
        self.cycle_index = 0
        self.cycle_stamp = 0.0
        self.probe_rtt_done_stamp = 0.0
        self.probe_rtt_round_done = False
        self.prior_cwnd = 0
        self.packet_conservation = False
        self.in_recovery = False
        self.idle_restart = False
        self._pacing_rate = 0.0
        self._srtt = 0.0
        self._delivered = 0
        self.cycle_offset = 0  # the first PROBE_BW phase (Linux picks it at random)

    # --- the model ----------------------------------------------------------------------------

    @property
    def bandwidth(self) -> float:
        """BtlBw: bytes per second."""
        return self.btlbw.get()

    def bdp(self, gain: float = 1.0) -> int:
        """BBRInflight(gain): gain * BtlBw * RTprop, in bytes (4.2.3.2)."""
        if self.rtprop == math.inf or not self.bandwidth:
            return initial_window(self.mss)
        return int(gain * self.bandwidth * self.rtprop)

    def pacing_rate(self) -> float | None:
        return self._pacing_rate or None

    def _init_pacing_rate(self, srtt: float) -> None:
        """4.2.1: the initial window over the SYN's RTT (or 1 ms), at the STARTUP gain."""
        rtt = srtt if srtt > 0 else 0.001
        self._pacing_rate = HIGH_GAIN * self.cwnd / rtt

    # --- on every ACK -------------------------------------------------------------------------

    def on_ack(self, acked: int, now: float, rtt: float, inflight: int) -> None:
        """BBR sets its window in :meth:`on_sample` (every ACK, in recovery too)."""

    def on_sample(self, sample: AckSample) -> None:
        rs = sample.rs
        now = sample.now
        if not self._pacing_rate:
            self._init_pacing_rate(sample.srtt)
        if not self.rtprop_stamp:
            self.rtprop_stamp = now  # the filter's window starts with the connection
        self._update_round(sample)
        if rs.rate > 0 and (rs.rate >= self.bandwidth or not rs.app_limited):
            self.btlbw.update(self.round_count, rs.rate)
        if self.mode is Mode.PROBE_BW:
            self._check_cycle_phase(sample)
        self._check_full_pipe(sample)
        self._check_drain(sample)
        self._update_rtprop(sample)
        self._check_probe_rtt(sample)
        self._set_pacing_rate()
        self._set_cwnd(sample)
        self._srtt = sample.srtt
        self._delivered = sample.delivered
        del now

    def _update_round(self, sample: AckSample) -> None:
        """4.1.1.3: a round ends when a segment sent after it began is delivered."""
        rs = sample.rs
        self.round_start = False
        if rs.prior_time and rs.prior_delivered >= self.next_round_delivered:
            self.next_round_delivered = sample.delivered
            self.round_count += 1
            self.round_start = True
            self.packet_conservation = False

    def _check_cycle_phase(self, sample: AckSample) -> None:
        """4.3.4.4: move to the next gain when the phase has done its job."""
        now = sample.now
        full_length = now - self.cycle_stamp > self.rtprop
        gain = self.pacing_gain
        if gain == 1:
            advance = full_length
        elif gain > 1:
            advance = full_length and (sample.newly_lost > 0 or
                                       sample.prior_inflight >= self.bdp(gain))
        else:
            advance = full_length or sample.prior_inflight <= self.bdp(1.0)
        if advance:
            self.cycle_index = (self.cycle_index + 1) % len(PACING_GAIN_CYCLE)
            self.cycle_stamp = now
            self.pacing_gain = PACING_GAIN_CYCLE[self.cycle_index]

    def _check_full_pipe(self, sample: AckSample) -> None:
        """4.3.2.2: the pipe is full when BtlBw grew < 25% for three rounds."""
        if self.filled_pipe or not self.round_start or sample.rs.app_limited:
            return
        if self.bandwidth >= self.full_bw * FULL_BW_THRESH:
            self.full_bw = self.bandwidth
            self.full_bw_count = 0
            return
        self.full_bw_count += 1
        if self.full_bw_count >= FULL_BW_COUNT:
            self.filled_pipe = True

    def _check_drain(self, sample: AckSample) -> None:
        if self.mode is Mode.STARTUP and self.filled_pipe:
            self.mode = Mode.DRAIN  # 4.3.3: drain the queue STARTUP made
            self.pacing_gain = DRAIN_GAIN
            self.cwnd_gain = HIGH_GAIN
        if self.mode is Mode.DRAIN and sample.inflight <= self.bdp(1.0):
            self._enter_probe_bw(sample.now)

    def _enter_probe_bw(self, now: float) -> None:
        self.mode = Mode.PROBE_BW
        self.cwnd_gain = CWND_GAIN
        # 4.3.4.3: start anywhere but in the 3/4 phase
        self.cycle_index = (len(PACING_GAIN_CYCLE) - 1 - self.cycle_offset) \
            % len(PACING_GAIN_CYCLE)
        if PACING_GAIN_CYCLE[self.cycle_index] < 1:
            self.cycle_index = (self.cycle_index + 1) % len(PACING_GAIN_CYCLE)
        self.pacing_gain = PACING_GAIN_CYCLE[self.cycle_index]
        self.cycle_stamp = now

    def _update_rtprop(self, sample: AckSample) -> None:
        """4.1.2.3: the min RTT over 10 s."""
        now = sample.now
        rtt = sample.rs.rtt
        self.rtprop_expired = now > self.rtprop_stamp + RTPROP_FILTER_LEN
        if rtt > 0 and (rtt <= self.rtprop or self.rtprop_expired):
            self.rtprop = rtt
            self.rtprop_stamp = now

    def _check_probe_rtt(self, sample: AckSample) -> None:
        """4.3.5: every 10 s without a new min RTT, drain to 4 segments for 200 ms."""
        now = sample.now
        if self.mode is not Mode.PROBE_RTT and self.rtprop_expired and not self.idle_restart:
            self.mode = Mode.PROBE_RTT
            self.pacing_gain = 1.0
            self.cwnd_gain = 1.0
            self._save_cwnd()
            self.probe_rtt_done_stamp = 0.0
        if self.mode is Mode.PROBE_RTT:
            if not self.probe_rtt_done_stamp and \
                    sample.inflight <= MIN_PIPE_SEGMENTS * self.mss:
                self.probe_rtt_done_stamp = now + PROBE_RTT_DURATION
                self.probe_rtt_round_done = False
                self.next_round_delivered = sample.delivered
            elif self.probe_rtt_done_stamp:
                if self.round_start:
                    self.probe_rtt_round_done = True
                if self.probe_rtt_round_done and now > self.probe_rtt_done_stamp:
                    self.rtprop_stamp = now
                    self.cwnd = max(self.cwnd, self.prior_cwnd)
                    if self.filled_pipe:
                        self._enter_probe_bw(now)
                    else:
                        self.mode = Mode.STARTUP
                        self.pacing_gain = self.cwnd_gain = HIGH_GAIN
        self.idle_restart = False

    # --- the controls -------------------------------------------------------------------------

    def _set_pacing_rate(self) -> None:
        """4.2.1: gain * BtlBw, never lowered before the pipe is full."""
        bw = self.bandwidth
        if not bw:
            return
        rate = self.pacing_gain * bw * (1 - PACING_MARGIN)
        if self.filled_pipe or rate > self._pacing_rate:
            self._pacing_rate = rate

    def _set_cwnd(self, sample: AckSample) -> None:
        """4.2.3: cwnd_gain * BDP (+ headroom for ACK aggregation), packet conservation
        in the first round of recovery, 4 segments in PROBE_RTT."""
        mss = self.mss
        delivered = sample.newly_delivered
        target = self.bdp(self.cwnd_gain) + 3 * mss  # 4.2.3.2: 3 send quanta of headroom
        if self.in_recovery and self.packet_conservation:
            self.cwnd = max(self.cwnd, sample.inflight + delivered)
        elif self.filled_pipe:
            self.cwnd = min(self.cwnd + delivered, target)
        elif self.cwnd < target or sample.delivered < initial_window(mss):
            self.cwnd += delivered
        self.cwnd = max(self.cwnd, MIN_PIPE_SEGMENTS * mss)
        if self.mode is Mode.PROBE_RTT:
            self.cwnd = min(self.cwnd, MIN_PIPE_SEGMENTS * mss)

    def _save_cwnd(self) -> None:
        """4.2.3.4: remember the last good window (not one already cut by recovery)."""
        if not self.in_recovery and self.mode is not Mode.PROBE_RTT:
            self.prior_cwnd = self.cwnd
        else:
            self.prior_cwnd = max(self.prior_cwnd, self.cwnd)

    # --- loss: BBR v1 does not treat loss as a congestion signal ------------------------------

    def on_congestion(self, inflight: int, now: float) -> None:
        """4.2.3.4: on entering fast recovery, packet conservation for one round."""
        self._save_cwnd()
        self.in_recovery = True
        self.packet_conservation = True
        self.next_round_delivered = self._delivered  # a round starts now (Linux does too)
        self.cwnd = max(inflight, MIN_PIPE_SEGMENTS * self.mss) if inflight else self.cwnd

    def on_recovery_exit(self, inflight: int, now: float) -> None:
        self.in_recovery = False
        self.packet_conservation = False
        self.cwnd = max(self.cwnd, self.prior_cwnd)

    def on_timeout(self, inflight: int, now: float) -> None:
        """An RTO: one segment in flight; the window grows back toward the model's target."""
        self._save_cwnd()
        self.cwnd = self.mss

    def on_idle_restart(self, rto: float, idle: float) -> None:
        self.idle_restart = True
