# SPDX-License-Identifier: MIT
"""The congestion control interface: cwnd and ssthresh in bytes, driven by ACK events."""

from __future__ import annotations

from typing import NamedTuple

from ustack.transport.tcp.rate import RateSample

INFINITE_SSTHRESH = 1 << 62


class AckSample(NamedTuple):
    """Everything one ACK told the sender, for algorithms that model the path (BBR) or
    watch RTT rounds (HyStart++). Built only for a ``wants_samples`` algorithm."""

    now: float
    rs: RateSample  # draft-cheng-iccrg-delivery-rate-estimation's rate sample
    delivered: int  # C.delivered: bytes delivered over the connection so far
    newly_delivered: int  # bytes this ACK cumulatively acked or SACKed
    newly_lost: int  # bytes this ACK's loss detection marked lost
    inflight: int  # bytes presumed in flight after the ACK (RFC 6675 pipe)
    prior_inflight: int  # ... and before it
    rtt: float  # this ACK's RTT sample (0.0: none)
    min_rtt: float
    srtt: float
    in_recovery: bool


def initial_window(mss: int) -> int:
    """RFC 6928: min(10*MSS, max(2*MSS, 14600))."""
    return min(10 * mss, max(2 * mss, 14600))


class CongestionControl:
    """Base class: RFC 5681's loss responses; subclasses define growth on ACKs."""

    name = "base"
    #: the algorithm wants :meth:`on_sample` on every ACK
    wants_samples = False
    #: the algorithm sets cwnd itself during loss recovery (BBR): PRR stays out of the
    #: way, as Linux skips tcp_cwnd_reduction for a cong_control algorithm
    controls_recovery = False
    #: the algorithm's sends must be paced (BBR sets the rate, pacing_rate())
    needs_pacing = False
    #: set by the sender: the connection is paced (HyStart++ then lifts its per-ACK cap)
    paced = False

    def __init__(self, mss: int) -> None:
        self.mss = mss
        self.cwnd = initial_window(mss)
        self.ssthresh = INFINITE_SSTHRESH

    def set_mss(self, mss: int) -> None:
        """The MSS is known only after the handshake (or changed by PMTU discovery)."""
        if self.cwnd == initial_window(self.mss):
            self.cwnd = initial_window(mss)
        self.mss = mss

    @property
    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    def on_ack(self, acked: int, now: float, rtt: float, inflight: int) -> None:
        """New data was acknowledged outside recovery."""
        raise NotImplementedError

    def on_congestion(self, inflight: int, now: float) -> None:
        """Loss detected by duplicate ACKs or SACK: RFC 5681 (4), RFC 6675 5 step 4.2."""
        self.ssthresh = max(inflight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh

    def on_recovery_exit(self, inflight: int, now: float) -> None:
        """Recovery ended (RFC 6582 3.2 step 3): do not burst."""
        self.cwnd = min(self.ssthresh, max(inflight + self.mss, 2 * self.mss))

    def on_timeout(self, inflight: int, now: float) -> None:
        """The retransmission timer fired: RFC 5681 (4) and the loss window of 1 MSS."""
        self.ssthresh = max(inflight // 2, 2 * self.mss)
        self.cwnd = self.mss

    def on_idle_restart(self, rto: float, idle: float) -> None:
        """RFC 5681 4.1: after an idle period longer than an RTO, restart from the IW."""
        if idle > rto:
            self.cwnd = min(self.cwnd, initial_window(self.mss))

    def on_sample(self, sample: AckSample) -> None:
        """Every ACK that acked or SACKed data, in or out of recovery (``wants_samples``)."""

    def pacing_rate(self) -> float | None:
        """Bytes per second to pace at, or None to send as the window allows."""
        return None
