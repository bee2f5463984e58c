# SPDX-License-Identifier: MIT
"""The retransmission timer (RFC 6298) as pure functions over an immutable estimate."""

from __future__ import annotations

from typing import NamedTuple

ALPHA = 1 / 8
BETA = 1 / 4
K = 4


class RTTEstimate(NamedTuple):
    srtt: float = 0.0  # 0: no sample yet
    rttvar: float = 0.0
    rto: float = 1.0  # RFC 6298 2.1: before any sample
    min_rtt: float = 0.0
    latest: float = 0.0


def sample(est: RTTEstimate, rtt: float, granularity: float, min_rto: float,
           max_rto: float, slop: float = 0.0) -> RTTEstimate:
    """Fold one RTT measurement in (RFC 6298 2.2 for the first, 2.3 after). ``slop`` is
    added to the result (FreeBSD's tcp_rexmit_slop, 200 ms: room for delayed ACKs)."""
    rtt = max(rtt, 1e-6)
    if est.srtt == 0.0:
        srtt, rttvar = rtt, rtt / 2
    else:
        rttvar = (1 - BETA) * est.rttvar + BETA * abs(est.srtt - rtt)
        srtt = (1 - ALPHA) * est.srtt + ALPHA * rtt
    rto = srtt + max(granularity, K * rttvar)
    rto = min(max(rto, min_rto) + slop, max_rto)  # RFC 6298 2.4 and 2.5
    min_rtt = rtt if est.min_rtt == 0.0 else min(est.min_rtt, rtt)
    return RTTEstimate(srtt, rttvar, rto, min_rtt, rtt)


def backoff(rto: float, max_rto: float) -> float:
    """RFC 6298 5.5: double the timer on expiry."""
    return min(rto * 2, max_rto)
