# SPDX-License-Identifier: MIT
"""Pacing: spreading a connection's segments over time on the stack's timer wheel.

A token bucket in bytes: ``rate`` bytes per second fill it up to ``depth``; a
segment may go while the bucket holds any credit (it may go into debt by one
segment, so a segment larger than the bucket still goes). When it is empty the
pacer arms its :class:`~ustack.transport.tcp.timers.TimerSlot` for the moment
credit returns, and the sender resumes from there. The wheel's fine slots (10 us
virtual, 100 us real) give sub-millisecond spacing; the bucket depth is at least
two wheel slots' worth of bytes, so a coarse wheel does not cap the rate.

Two uses: pure pacing (BBR's rate, or any congestion control paced at a multiple
of cwnd/SRTT as Linux does), with a bucket of a couple of segments; and burst
mitigation (the ``rack`` stack), with a bucket of ``max_burst`` segments that
normal ACK clocking never empties, but that spreads the burst a compressed or
stretch ACK would release.

The pacer measures what it achieves: the gap between consecutive sends of which
the second had to wait, against the gap the rate asked for.
"""

from __future__ import annotations

from collections.abc import Callable

from ustack.clock import Clock
from ustack.transport.tcp.timers import TimerSlot


def depth_for(rate: float, mss: int, resolution: float, segments: int = 2) -> int:
    """A bucket of ``segments`` segments, and never less than two wheel slots of rate."""
    return max(segments * mss, int(rate * 2 * resolution))


class Pacer:
    __slots__ = ("_clock", "_last_size", "_resolution", "_stamp", "_waited", "bursts", "depth",
                 "gap_count", "gap_sum", "last_send", "rate", "slot", "target_sum", "tokens",
                 "waits")

    def __init__(self, clock: Clock, on_ready: Callable[[], None]) -> None:
        self._clock = clock
        self._resolution = clock.wheel.resolution
        self.slot = TimerSlot(clock, on_ready)
        self.rate = 0.0  # bytes per second; 0: not pacing
        self.depth = 0  # bucket size, bytes
        self.tokens = 0.0
        self._stamp = clock.now()
        # measurement
        self.last_send = -1.0
        self._last_size = 0
        self._waited = False
        self.waits = 0  # times a send had to wait for credit
        self.gap_count = 0
        self.gap_sum = 0.0  # measured gaps before sends that waited
        self.target_sum = 0.0  # the gaps the rate asked for
        self.bursts = 0

    def configure(self, rate: float, depth: int) -> None:
        if rate != self.rate or depth != self.depth:
            self._refill(self._clock.now())
            if self.rate <= 0:
                self.tokens = float(depth)  # pacing starts with a full bucket
            self.rate = rate
            self.depth = depth
            if self.tokens > depth:
                self.tokens = float(depth)

    def _refill(self, now: float) -> None:
        if self.rate > 0:
            tokens = self.tokens + (now - self._stamp) * self.rate
            self.tokens = tokens if tokens < self.depth else float(self.depth)
        self._stamp = now

    def may_send(self, now: float) -> bool:
        """Is there credit for a segment now? If not, the timer is armed for when."""
        if self.rate <= 0:
            return True
        self._refill(now)
        # credit within a microsecond counts (float noise must not re-arm the timer for
        # the very slot that is firing now)
        if self.tokens > -1e-6 * self.rate:
            return True
        self._waited = True
        self.waits += 1
        self.slot.set_at(now - self.tokens / self.rate)
        return False

    def on_sent(self, nbytes: int, now: float) -> None:
        if self.rate <= 0:
            return
        if self._waited and self.last_send >= 0:
            self.gap_count += 1
            self.gap_sum += now - self.last_send
            self.target_sum += self._last_size / self.rate if self._last_size else 0.0
        self._waited = False
        self.tokens -= nbytes
        self.last_send = now
        self._last_size = nbytes

    @property
    def slot_resolution(self) -> float:
        return self._resolution

    @property
    def spacing(self) -> float:
        """The mean measured gap (s) before a send that waited for credit."""
        return self.gap_sum / self.gap_count if self.gap_count else 0.0

    @property
    def target_spacing(self) -> float:
        """The mean gap the rate asked for over the same sends."""
        return self.target_sum / self.gap_count if self.gap_count else 0.0

    def stop(self) -> None:
        self.slot.stop()
