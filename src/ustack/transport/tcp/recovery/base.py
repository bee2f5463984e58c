# SPDX-License-Identifier: MIT
"""The loss-recovery interface: what the sender asks after each ACK and on timeouts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ustack.transport.tcp.sender import Sender
    from ustack.transport.tcp.sendmap import SentSegment

DUPTHRESH = 3  # RFC 5681 / RFC 6675


@dataclass
class AckEvent:
    """What one incoming ACK did to the send side."""

    now: float
    acked: int  # bytes newly cumulatively acknowledged
    sacked: int  # bytes newly SACKed
    dupack: bool  # RFC 5681 section 2 "DUPLICATE ACKNOWLEDGMENT" (or new SACK info)
    flight_before: int  # snd_max - snd_una before the ACK
    rtt: float  # 0.0 when this ACK gave no sample
    #: the segments this ACK cumulatively acked and newly SACKed (their transmit times
    #: drive RACK, RFC 8985 6.2 step 1)
    acked_segments: list[SentSegment] = field(default_factory=list)
    sacked_segments: list[SentSegment] = field(default_factory=list)
    dsack: bool = False  # the ACK carried a D-SACK block (RFC 2883)


class LossRecovery:
    """Base: duplicate-ACK counting, the recovery point, and the RTO response."""

    name = "base"

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.in_recovery = False
        self.recovery_point = sender.snd_una  # RFC 6582 "recover"
        self.dupacks = 0
        #: a fast retransmission that goes out regardless of the window
        self.retransmit_now = False
        self.recoveries = 0

    def on_ack(self, event: AckEvent) -> None:
        raise NotImplementedError

    def on_timeout(self) -> None:
        """RFC 6298 5.4-5.6 with RFC 6582 section 4: leave recovery, resend from snd_una."""
        s = self.sender
        self.in_recovery = False
        self.retransmit_now = False
        self.dupacks = 0
        self.recovery_point = s.snd_max
        s.cc.on_timeout(s.snd_max - s.snd_una, s.clock.now())
        head = s.sendmap.segments[0] if s.sendmap.segments else None
        if head is not None and head.sacked:
            # RFC 2018 section 8: the receiver reneged on its SACKs (SND.UNA itself was
            # SACKed, yet not acknowledged): forget them, as Linux's tcp_timeout_mark_lost,
            # or the data they covered would never be sent again.
            s.sendmap.clear_sacks()
            s.stats.count("tcp.sack_reneging")
        s.sendmap.mark_all_lost()

    def after_send(self) -> None:
        """The sender put new data on the wire (RACK-TLP arms its probe timer here)."""

    def adopt(self, old: LossRecovery) -> None:
        """Take over from ``old`` when the connection switches TCP stacks mid-stream:
        the recovery episode in progress (if any) and its counters."""
        self.in_recovery = old.in_recovery
        self.recovery_point = old.recovery_point
        self.dupacks = old.dupacks
        self.recoveries = old.recoveries

    def detach(self) -> None:
        """This strategy is being replaced or the connection closed: stop its timers."""

    def next_retransmission(self) -> SentSegment | None:
        return self.sender.sendmap.next_lost()

    def allowance(self) -> int:
        """Bytes that may still be put in flight: cwnd - pipe (plus limited transmit)."""
        s = self.sender
        pipe = s.sendmap.pipe(s.snd_max - s.snd_una)
        extra = 0
        if not self.in_recovery and 0 < self.dupacks < DUPTHRESH and not s.sendmap.sacked_bytes:
            # RFC 3042 limited transmit; with SACK, pipe already excludes the data the
            # duplicate ACKs reported (RFC 6675 5), so adding it again would double count
            extra = self.dupacks * s.mss
        return s.cc.cwnd + extra - pipe

    def _enter(self, now: float) -> None:
        s = self.sender
        self.in_recovery = True
        self.recoveries += 1
        self.recovery_point = s.snd_max
        s.cc.on_congestion(s.snd_max - s.snd_una, now)
        if s.sendmap.segments:
            s.sendmap.mark_lost(s.sendmap.segments[0])
        self.retransmit_now = True
        s.stats.count("tcp.fast_recovery")

    def _exit(self, now: float) -> None:
        s = self.sender
        self.in_recovery = False
        self.dupacks = 0
        s.cc.on_recovery_exit(s.snd_max - s.snd_una, now)
