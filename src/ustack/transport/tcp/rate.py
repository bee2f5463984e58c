# SPDX-License-Identifier: MIT
"""Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation): per-ACK rate samples."""

from __future__ import annotations

from dataclasses import dataclass

from ustack.transport.tcp.sendmap import SentSegment


@dataclass(slots=True)
class RateSample:
    delivered: int = 0  # bytes delivered over the interval
    interval: float = 0.0
    rate: float = 0.0  # bytes per second (0: no valid sample)
    rtt: float = 0.0  # of the most recently sent segment this ACK delivered
    app_limited: bool = False
    prior_delivered: int = 0
    prior_time: float = 0.0
    send_elapsed: float = 0.0
    ack_elapsed: float = 0.0
    newly_lost: int = 0


class DeliveryRate:
    """The connection-wide counters of section 3.1 and the per-ACK update of 3.3."""

    def __init__(self) -> None:
        self.delivered = 0
        self.delivered_time = 0.0
        self.first_sent_time = 0.0
        self.app_limited_until = 0  # "C.app_limited": 0 when not app-limited
        self.latest = RateSample()

    def on_send(self, seg: SentSegment, inflight_before: int, now: float) -> None:
        """Section 3.2: snapshot the connection state into the segment."""
        if inflight_before == 0:
            self.first_sent_time = now
            self.delivered_time = now
        seg.delivered = self.delivered
        seg.delivered_time = self.delivered_time
        seg.first_sent_time = self.first_sent_time
        seg.app_limited = self.app_limited_until != 0

    def mark_app_limited(self, inflight: int) -> None:
        """Section 3.4: the sender ran out of data, not of window."""
        self.app_limited_until = max(self.delivered + inflight, 1)

    def on_delivered(self, seg: SentSegment, rs: RateSample, now: float) -> None:
        """Section 3.3 UpdateRateSample() for one newly acked or SACKed segment."""
        self.delivered += seg.length
        self.delivered_time = now
        if seg.delivered >= rs.prior_delivered:
            rs.prior_delivered = seg.delivered
            rs.prior_time = seg.delivered_time
            rs.app_limited = seg.app_limited
            rs.send_elapsed = seg.sent_at - seg.first_sent_time
            rs.ack_elapsed = self.delivered_time - seg.delivered_time
            rs.rtt = now - seg.sent_at
            self.first_sent_time = seg.sent_at

    def finish(self, rs: RateSample, min_rtt: float) -> RateSample:
        """Section 3.3 GenerateRateSample(): the rate over max(send, ack) elapsed."""
        if self.app_limited_until and self.delivered > self.app_limited_until:
            self.app_limited_until = 0
        if rs.prior_time == 0.0:
            return rs
        rs.delivered = self.delivered - rs.prior_delivered
        rs.interval = max(rs.send_elapsed, rs.ack_elapsed)
        if rs.interval > 0 and rs.interval >= min_rtt * 0.999:
            rs.rate = rs.delivered / rs.interval
            # An application-limited sample says little about the path: it replaces the
            # reported one only when it is higher (Linux tcp_rate_gen, section 3.3 note).
            if not rs.app_limited or rs.rate >= self.latest.rate:
                self.latest = rs
        return rs
