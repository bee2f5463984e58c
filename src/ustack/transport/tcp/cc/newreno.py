# SPDX-License-Identifier: MIT
"""Reno/NewReno window growth (RFC 5681 3.1) with appropriate byte counting (RFC 3465)."""

from __future__ import annotations

from ustack.transport.tcp.cc.base import CongestionControl


class NewReno(CongestionControl):
    name = "newreno"

    def __init__(self, mss: int) -> None:
        super().__init__(mss)
        self._acked_in_ca = 0

    def on_ack(self, acked: int, now: float, rtt: float, inflight: int) -> None:
        if self.cwnd < self.ssthresh:
            # Slow start: grow by the bytes acked, at most 2*SMSS per ACK (RFC 3465 L=2).
            self.cwnd += min(acked, 2 * self.mss)
            return
        # Congestion avoidance: one SMSS per cwnd of acknowledged bytes (RFC 5681 eq. 3 note).
        self._acked_in_ca += acked
        if self._acked_in_ca >= self.cwnd:
            self._acked_in_ca -= self.cwnd
            self.cwnd += self.mss

    def on_congestion(self, inflight: int, now: float) -> None:
        super().on_congestion(inflight, now)
        self._acked_in_ca = 0

    def on_timeout(self, inflight: int, now: float) -> None:
        super().on_timeout(inflight, now)
        self._acked_in_ca = 0
