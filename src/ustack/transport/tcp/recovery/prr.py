# SPDX-License-Identifier: MIT
"""Proportional Rate Reduction (RFC 6937): how much to send on each ACK during fast
recovery, so that the flight shrinks smoothly to ssthresh instead of stalling (RFC
6675, which waits for pipe to fall below cwnd) or bursting (Reno's window inflation).

A pure state machine in bytes: the loss-recovery strategy feeds it each ACK's
delivered bytes, pipe and what was sent, and it answers ``sndcnt``.
"""

from __future__ import annotations

import math


class PRR:
    """RFC 6937 section 3, with the Slow Start Reduction Bound (PRR-SSRB) by default."""

    __slots__ = ("conservative", "mss", "prr_delivered", "prr_out", "recover_fs", "ssthresh")

    def __init__(self, ssthresh: int, recover_fs: int, mss: int,
                 conservative: bool = False) -> None:
        # "at the beginning of recovery": ssthresh from the congestion control,
        # RecoverFS = snd.nxt - snd.una, both counters zero
        self.ssthresh = ssthresh
        self.recover_fs = max(recover_fs, 1)
        self.mss = mss
        self.prr_delivered = 0
        self.prr_out = 0
        self.conservative = conservative  # PRR-CRB instead of PRR-SSRB

    def on_ack(self, delivered: int, pipe: int) -> int:
        """"On every ACK during recovery": returns sndcnt, the bytes this ACK may send."""
        self.prr_delivered += delivered
        if pipe > self.ssthresh:
            # Proportional Rate Reduction
            # (rounded up to whole segments, as the RFC's examples and Linux count them)
            share = self.prr_delivered * self.ssthresh / self.recover_fs
            sndcnt = math.ceil(share / self.mss - 1e-9) * self.mss - self.prr_out
        else:
            # the Reduction Bound: catch up toward ssthresh, no faster than slow start
            if self.conservative:
                limit = self.prr_delivered - self.prr_out
            else:
                limit = max(self.prr_delivered - self.prr_out, delivered) + self.mss
            sndcnt = min(self.ssthresh - pipe, limit)
        return max(sndcnt, 0)

    def on_sent(self, nbytes: int) -> None:
        """"On any data transmission or retransmission": prr_out += data sent."""
        self.prr_out += nbytes
