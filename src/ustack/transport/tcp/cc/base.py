# SPDX-License-Identifier: MIT
"""The congestion control interface: cwnd and ssthresh in bytes, driven by ACK events."""

from __future__ import annotations

INFINITE_SSTHRESH = 1 << 62


def initial_window(mss: int) -> int:
    """RFC 6928: min(10*MSS, max(2*MSS, 14600))."""
    return min(10 * mss, max(2 * mss, 14600))


class CongestionControl:
    """Base class: RFC 5681's loss responses; subclasses define growth on ACKs."""

    name = "base"

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

    def pacing_rate(self) -> float | None:
        """Bytes per second to pace at, or None to send as the window allows."""
        return None
