# SPDX-License-Identifier: MIT
"""A link wrapper that impairs traffic: loss, delay, jitter, reordering, duplication, rate.

In the spirit of Linux netem and tbf (which this machine's kernel lacks), but
scheduled on the stack's injected clock, so a test on the virtual clock is fast
and, with a fixed seed, the same every run. Each direction has its own
:class:`Impairment` settings, random stream and counters: ``tx`` impairs what
the stack sends, ``rx`` what it receives (the wrapper attaches itself as the
inner link's dispatcher and sits between the inner link and the NIC).

Every frame goes through these steps, in order:

1. explicit drop: the frame's number in its direction (1 = the first) is in
   ``drop`` (deterministic tests);
2. burst loss: a Gilbert-Elliott chain (:class:`GilbertElliott`);
3. random loss: Bernoulli with probability ``loss``;
4. duplication: with probability ``duplicate`` a second copy follows;
5. rate limit: each copy waits for the copies before it to be serialized at
   ``rate`` bits per second; one that would push the backlog past
   ``queue_limit`` bytes is tail-dropped;
6. delay: ``delay``, plus a uniform jitter in ``[-jitter, +jitter]`` (which,
   as in netem, can reorder frames), plus ``reorder_delay`` for a frame held
   back with probability ``reorder``.

Losses are silent, as on a wire: ``write_packets`` reports every frame accepted.
A frame that needs no waiting goes on at once, in the caller's batch. Delayed
outbound packets are cloned (their own headers, the payload shared: it is
immutable by contract), since the inner link prepends its header in place.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ustack.buffer import PacketBuffer
from ustack.clock import Clock, Timer
from ustack.contracts import LinkEndpoint, NetworkDispatcher
from ustack.link.base import WrappingLink
from ustack.stats import Stats


@dataclass
class GilbertElliott:
    """Two-state burst loss (Gilbert 1960, Elliott 1963; netem's ``loss gemodel``).

    Each frame is lost with the current state's loss probability; then the
    state moves on: good -> bad with ``p``, bad -> good with ``r``. The mean
    burst lasts ``1/r`` frames; the chain is in the bad state ``p/(p+r)`` of
    the time.
    """

    p: float
    r: float
    loss_good: float = 0.0  # netem's 1-k
    loss_bad: float = 1.0  # netem's 1-h
    bad: bool = False  # the current state

    def lost(self, rng: random.Random) -> bool:
        lost = rng.random() < (self.loss_bad if self.bad else self.loss_good)
        if rng.random() < (self.r if self.bad else self.p):
            self.bad = not self.bad
        return lost


@dataclass
class Impairment:
    """What one direction suffers. The defaults impair nothing."""

    loss: float = 0.0
    burst_loss: GilbertElliott | None = None
    drop: set[int] = field(default_factory=set)  # frame numbers, 1 = the first in this direction
    delay: float = 0.0  # seconds
    jitter: float = 0.0  # seconds, uniform in [-jitter, +jitter] around ``delay``
    reorder: float = 0.0  # probability of holding a frame back
    reorder_delay: float = 0.01  # the extra delay of a held-back frame
    duplicate: float = 0.0
    rate: float = 0.0  # bits per second; 0: unlimited
    queue_limit: int | None = None  # bytes waiting for the rate limit; None: unlimited

    def __post_init__(self) -> None:
        for name in ("loss", "reorder", "duplicate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability, not {value}")
        if self.delay < 0 or self.jitter < 0 or self.reorder_delay < 0 or self.rate < 0:
            raise ValueError("delays and rates cannot be negative")


class _Direction:
    """The state of one direction: settings, random stream, rate-limit queue, counters."""

    def __init__(self, name: str, settings: Impairment, rng: random.Random, clock: Clock,
                 stats: Stats) -> None:
        self.name = name
        self.settings = settings
        self.rng = rng
        self._clock = clock
        self._stats = stats
        self.frames = 0  # frames seen, numbering them for ``drop``
        self._busy_until = 0.0  # when the rate limiter finishes serializing its backlog
        self._queue: deque[tuple[float, int]] = deque()  # (done serializing at, bytes)
        self._backlog = 0

    def count(self, event: str, n: int = 1) -> None:
        self._stats.counters[f"{self.name}.{event}"] += n

    def schedule(self, size: int) -> list[float] | None:
        """Departure times (absolute) of this frame's copies; [] when all are lost."""
        s = self.settings
        self.frames += 1
        self.count("frames")
        if self.frames in s.drop:
            self.count("lost_explicit")
            return []
        rng = self.rng
        if s.burst_loss is not None and s.burst_loss.lost(rng):
            self.count("lost_burst")
            return []
        if s.loss and rng.random() < s.loss:
            self.count("lost_random")
            return []
        copies = 1
        if s.duplicate and rng.random() < s.duplicate:
            copies = 2
            self.count("duplicated")
        now = self._clock.now()
        times: list[float] = []
        for _ in range(copies):
            at = self._serialize(now, size) if s.rate else now
            if at is None:
                continue
            delay = s.delay
            if s.jitter:
                delay = max(0.0, delay + rng.uniform(-s.jitter, s.jitter))
            if s.reorder and rng.random() < s.reorder:
                delay += s.reorder_delay
                self.count("reordered")
            times.append(at + delay)
        return times

    def _serialize(self, now: float, size: int) -> float | None:
        """When the rate limiter has sent ``size`` more bytes, or None for a tail drop."""
        s = self.settings
        queue = self._queue
        while queue and queue[0][0] <= now:
            self._backlog -= queue.popleft()[1]
        if s.queue_limit is not None and self._backlog + size > s.queue_limit:
            self.count("queue_dropped")
            return None
        done = max(now, self._busy_until) + size * 8 / s.rate
        self._busy_until = done
        queue.append((done, size))
        self._backlog += size
        return done

    @property
    def backlog(self) -> int:
        """Bytes accepted by the rate limiter and not yet serialized."""
        now = self._clock.now()
        while self._queue and self._queue[0][0] <= now:
            self._backlog -= self._queue.popleft()[1]
        return self._backlog


class ImpairmentEndpoint(WrappingLink):
    """Wraps ``inner``; ``tx`` impairs outbound frames, ``rx`` inbound ones."""

    def __init__(self, inner: LinkEndpoint, clock: Clock, tx: Impairment | None = None,
                 rx: Impairment | None = None, seed: int = 0) -> None:
        self.inner = inner
        self._clock = clock
        self.stats = Stats()
        # one random stream per direction: changing one side's settings leaves the other's
        # sequence of decisions as it was
        self._tx = _Direction("tx", tx or Impairment(), random.Random(f"{seed}/tx"), clock,
                              self.stats)
        self._rx = _Direction("rx", rx or Impairment(), random.Random(f"{seed}/rx"), clock,
                              self.stats)
        self._dispatcher: NetworkDispatcher | None = None
        self._pending: dict[Timer, None] = {}
        self._closed = False

    @property
    def tx(self) -> Impairment:
        """The outbound settings (change them at any time)."""
        return self._tx.settings

    @tx.setter
    def tx(self, settings: Impairment) -> None:
        self._tx.settings = settings

    @property
    def rx(self) -> Impairment:
        """The inbound settings (change them at any time)."""
        return self._rx.settings

    @rx.setter
    def rx(self, settings: Impairment) -> None:
        self._rx.settings = settings

    @property
    def tx_frames(self) -> int:
        """Outbound frames seen so far (the number of the last one, for ``drop``)."""
        return self._tx.frames

    @property
    def rx_frames(self) -> int:
        return self._rx.frames

    @property
    def tx_backlog(self) -> int:
        return self._tx.backlog

    @property
    def rx_backlog(self) -> int:
        return self._rx.backlog

    # --- LinkEndpoint, delegated ---------------------------------------------------------------

    def close(self) -> None:
        self._closed = True
        for timer in self._pending:
            timer.cancel()
        self._pending.clear()
        self._dispatcher = None
        self.inner.close()

    # --- outbound -------------------------------------------------------------------------------

    def write_packets(self, pkts: Sequence[PacketBuffer]) -> int:
        if self._closed:
            return 0
        direction = self._tx
        link_header = self.inner.max_header_length
        now_list: list[PacketBuffer] = []
        now = self._clock.now()
        for pkt in pkts:
            times = direction.schedule(len(pkt) + link_header)
            if not times:
                continue
            for i, at in enumerate(times):
                # the first copy may go as it is; every other copy needs its own buffer,
                # made before the inner link prepends its header into this one
                copy = pkt if i == 0 and at <= now else pkt.clone()
                if at <= now:
                    now_list.append(copy)
                else:
                    self._later(at, self._send, copy)
        direction.count("passed", len(now_list))
        if now_list:
            self._send_now(now_list)
        return len(pkts)

    def _send_now(self, pkts: list[PacketBuffer]) -> None:
        accepted = self.inner.write_packets(pkts)
        if accepted < len(pkts):
            self._tx.count("inner_rejected", len(pkts) - accepted)

    def _send(self, pkt: PacketBuffer) -> None:
        self._tx.count("passed")
        self._tx.count("delayed")
        self._send_now([pkt])

    # --- inbound (NetworkDispatcher for the inner link) -----------------------------------------

    def deliver_network_packet(self, ethertype: int, pkt: PacketBuffer) -> None:
        if self._closed:
            return
        size = pkt.offset + pkt.payload_length  # the whole frame, link header included
        times = self._rx.schedule(size)
        if not times:
            return
        now = self._clock.now()
        # copies first: the layers above pull headers off (and set fields in) the original
        copies = [pkt] + [pkt.clone() for _ in times[1:]]
        for at, copy in zip(times, copies, strict=True):
            if at <= now:
                self._receive(ethertype, copy, delayed=False)
            else:
                self._later(at, self._receive, ethertype, copy, True)

    def _receive(self, ethertype: int, pkt: PacketBuffer, delayed: bool) -> None:
        self._rx.count("passed")
        if delayed:
            self._rx.count("delayed")
        dispatcher = self._dispatcher
        if dispatcher is not None:
            dispatcher.deliver_network_packet(ethertype, pkt)

    # --- timers ---------------------------------------------------------------------------------

    def _later(self, at: float, callback: Callable[..., None], *args: object) -> None:
        timer: Timer | None = None

        def fire() -> None:
            if timer is not None:
                self._pending.pop(timer, None)
            callback(*args)

        timer = self._clock.call_at(at, fire)
        self._pending[timer] = None

