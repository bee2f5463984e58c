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
    # (runs on every timed ACK: plain comparisons rather than calls to min/max/abs)
    if rtt < 1e-6:
        rtt = 1e-6
    srtt = est.srtt
    if srtt == 0.0:
        srtt, rttvar = rtt, rtt / 2
    else:
        error = srtt - rtt
        rttvar = (1 - BETA) * est.rttvar + BETA * (error if error >= 0 else -error)
        srtt = (1 - ALPHA) * srtt + ALPHA * rtt
    variation = K * rttvar
    rto = srtt + (variation if variation > granularity else granularity)
    rto = (rto if rto > min_rto else min_rto) + slop
    if rto > max_rto:  # RFC 6298 2.4 and 2.5
        rto = max_rto
    min_rtt = est.min_rtt
    if min_rtt == 0.0 or rtt < min_rtt:
        min_rtt = rtt
    return RTTEstimate(srtt, rttvar, rto, min_rtt, rtt)


def backoff(rto: float, max_rto: float) -> float:
    """RFC 6298 5.5: double the timer on expiry."""
    return min(rto * 2, max_rto)
