# SPDX-License-Identifier: MIT
"""One simulated bulk transfer: stack ``a`` sends to stack ``b`` across a bottleneck
(rate, RTT, drop-tail queue, loss pattern), all on a virtual clock, so a run is
fast and the same for a seed. Samples the sender's state every ``interval`` and
sums up goodput, utilisation, retransmissions, RTOs and queueing delay.
"""

from __future__ import annotations

import csv
import random
import re
import socket
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ustack.clock import VirtualClock
from ustack.contracts import LinkEndpoint
from ustack.sim.bottleneck import Bottleneck, ReturnPath
from ustack.testing.pair import B4, StackPair, make_pair
from ustack.transport.tcp.config import TCPConfig
from ustack.transport.tcp.endpoint import TCPEndpoint
from ustack.transport.tcp.protocol import TCPProtocol
from ustack.waiter import READABLE, WRITABLE

ETH_IP_TCP = 14 + 20 + 20  # link, IPv4 and TCP headers of every data frame

_RATE_UNITS = {"": 1, "bit": 1, "bps": 1, "k": 1e3, "kbit": 1e3, "kbps": 1e3, "m": 1e6,
               "mbit": 1e6, "mbps": 1e6, "g": 1e9, "gbit": 1e9, "gbps": 1e9}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}


def parse_rate(text: str | float) -> float:
    """'100mbit', '1.5Gbit', '800k' or a number: bits per second."""
    if isinstance(text, int | float):
        return float(text)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _RATE_UNITS:
        raise ValueError(f"not a rate: {text!r} (try 100mbit)")
    return float(m.group(1)) * _RATE_UNITS[m.group(2).lower()]


def parse_time(text: str | float) -> float:
    """'40ms', '0.04s', '500us' or a number of seconds."""
    if isinstance(text, int | float):
        return float(text)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-z]*)\s*", text)
    if not m or m.group(2) not in _TIME_UNITS:
        raise ValueError(f"not a duration: {text!r} (try 40ms)")
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


@dataclass
class SimConfig:
    cc: str = "cubic"
    stack: str = "rack"
    rate: float = 100e6  # bottleneck, bits per second
    rtt: float = 0.04  # two-way propagation delay, seconds
    queue_bdp: float = 1.0  # drop-tail queue limit in bandwidth-delay products
    queue_bytes: int | None = None  # ... or in bytes (wins when set)
    loss: float = 0.0  # mean loss rate of the pattern (0.01 = 1%)
    pattern: str = "random"  # random, bursts, tail
    burst: float = 3.0  # mean burst length (frames) for "bursts"
    drop: set[int] = field(default_factory=set)  # explicit data-path frame numbers to drop
    reorder: float = 0.0  # probability of holding a data frame back
    reorder_delay: float = 0.0
    seconds: float = 10.0
    transfer: int | None = None  # bytes to send (None: as much as the time allows)
    mtu: int = 1500
    seed: int = 1
    interval: float = 0.01  # sampling period
    pacing: bool = False  # pace even a congestion control that does not need it
    sndbuf: int = 32 << 20
    rcvbuf: int = 32 << 20
    initial_rto: float = 1.0

    @property
    def bdp(self) -> int:
        """Bytes in flight that fill the pipe (the bottleneck rate times the RTT)."""
        return int(self.rate / 8 * self.rtt)

    @property
    def queue_limit(self) -> int:
        if self.queue_bytes is not None:
            return self.queue_bytes
        return max(int(self.queue_bdp * self.bdp), 2 * self.mtu)


@dataclass
class Sample:
    t: float
    cwnd: int
    ssthresh: int
    inflight: int
    pacing_rate: float  # bits/s
    delivery_rate: float  # bits/s
    goodput: float  # bits/s over the interval (application bytes at the receiver)
    srtt: float
    rtt: float
    min_rtt: float
    queue_bytes: int
    queue_delay: float
    retransmits: int
    rtos: int
    state: str


@dataclass
class SimResult:
    config: SimConfig
    samples: list[Sample]
    summary: dict[str, Any]

    def write_csv(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            names = list(Sample.__dataclass_fields__)
            writer = csv.writer(f)
            writer.writerow(names)
            for s in self.samples:
                writer.writerow([_fmt(getattr(s, n)) for n in names])

    def format_summary(self) -> str:
        s = self.summary
        c = self.config
        mbit = 1e6
        lines = [
            f"ustack sim: {c.stack}+{c.cc} over {c.rate / mbit:g} Mbit/s, RTT "
            f"{c.rtt * 1000:g} ms, queue {c.queue_limit} B ({c.queue_limit / max(c.bdp, 1):.2f}"
            f" BDP), loss {c.loss * 100:g}% {c.pattern}, {s['seconds']:.2f} s (seed {c.seed})",
            f"  goodput        {s['goodput'] / mbit:9.2f} Mbit/s  ({s['goodput_ratio']:.1%} of "
            f"the bottleneck)",
            f"  utilisation    {s['utilisation']:9.1%}        (wire bytes / capacity)",
            f"  retransmits    {s['retransmits']:9d}        ({s['retransmit_ratio']:.2%} of "
            f"segments)",
            f"  RTOs           {s['rtos']:9d}        TLP probes {s['tlp_probes']}, fast recoveries "
            f"{s['fast_recoveries']}",
            f"  queueing delay {s['queue_delay_mean'] * 1000:9.2f} ms mean, "
            f"{s['queue_delay_p95'] * 1000:.2f} ms p95, {s['queue_delay_max'] * 1000:.2f} ms max",
            f"  standing queue {s['standing_queue_bdp']:9.2f} BDP (median after warm-up)",
            f"  RTT            {s['srtt'] * 1000:9.2f} ms srtt, {s['min_rtt'] * 1000:.2f} ms min",
            f"  pacing         {s['pacing_spacing'] * 1e6:9.1f} us measured gap vs "
            f"{s['pacing_spacing_target'] * 1e6:.1f} us asked ({s['pacing_waits']} waits)",
            f"  delivered      {s['delivered_bytes']} bytes, intact: {s['intact']}",
        ]
        return "\n".join(lines)


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


_PERIOD = 65521  # a prime: a byte shifted by any segment-sized amount shows
_BLOCK = random.Random(0x5157).randbytes(_PERIOD)
_TILED = _BLOCK * ((2 << 20) // _PERIOD + 2)


def stream_bytes(offset: int, n: int) -> bytes:
    """``n`` bytes of the test stream from ``offset`` (n <= 2 MiB)."""
    start = offset % _PERIOD
    return _TILED[start:start + n]


class Simulation:
    """Build the two stacks and the bottleneck; :meth:`run` drives the transfer."""

    def __init__(self, config: SimConfig,
                 on_sample: Callable[[Simulation, Sample], None] | None = None) -> None:
        self.config = config
        self.on_sample = on_sample
        self.clock = VirtualClock()
        c = config
        made: dict[str, Any] = {}

        def wrap_a(link: LinkEndpoint) -> LinkEndpoint:
            made["a"] = Bottleneck(link, self.clock, c.rate, c.rtt / 2, c.queue_limit,
                                   c.pattern, c.loss, c.burst, c.drop, c.reorder,
                                   c.reorder_delay, seed=c.seed * 2)
            return made["a"]  # type: ignore[no-any-return]

        def wrap_b(link: LinkEndpoint) -> LinkEndpoint:
            made["b"] = ReturnPath(link, self.clock, c.rtt / 2, seed=c.seed * 2 + 1)
            return made["b"]  # type: ignore[no-any-return]

        self.pair: StackPair = make_pair(mtu=c.mtu, wrap_a=wrap_a, wrap_b=wrap_b,
                                         clock=self.clock)
        self.bottleneck: Bottleneck = made["a"]
        tcp = TCPConfig(congestion_control=c.cc, tcp_stack=c.stack, pacing=c.pacing,
                        sndbuf=c.sndbuf, sndbuf_max=c.sndbuf, rcvbuf=c.rcvbuf,
                        rcvbuf_max=c.rcvbuf, initial_rto=c.initial_rto)
        for stack in (self.pair.a, self.pair.b):
            stack.register_transport_protocol(TCPProtocol(stack, TCPConfig(**asdict(tcp))))
        self.sent = 0
        self.received = 0
        self.intact = True
        self.samples: list[Sample] = []
        self._last_received = 0
        self._sender: TCPEndpoint | None = None
        self._receiver: TCPEndpoint | None = None
        self._fill_scheduled = False
        self._drain_scheduled = False
        self.start_time = 0.0
        self.done_time: float | None = None

    @property
    def sender(self) -> TCPEndpoint:
        assert self._sender is not None
        return self._sender

    @property
    def receiver(self) -> TCPEndpoint:
        assert self._receiver is not None
        return self._receiver

    # --- the connection and its applications --------------------------------------------------

    def _connect(self) -> None:
        p = self.pair
        srv = p.b.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("0.0.0.0", 5001))
        srv.listen(1)
        cli = p.a.socket(socket.AF_INET, socket.SOCK_STREAM)
        cli.setblocking(False)
        cli.connect_ex((B4, 5001))
        self.clock.run_until(lambda: srv._ep.listener.ready(), 10)
        conn, _ = srv.accept()
        self._listener = srv
        self._cli, self._srv = cli, conn
        self._sender = cli._ep
        self._receiver = conn._ep
        self.sender.waiters.add(WRITABLE, lambda _e: self._schedule_fill(), persistent=True)
        self.receiver.waiters.add(READABLE, lambda _e: self._schedule_drain(), persistent=True)

    def _schedule_fill(self) -> None:
        if not self._fill_scheduled:
            self._fill_scheduled = True
            self.clock.call_soon(self._fill)

    def _schedule_drain(self) -> None:
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.clock.call_soon(self._drain)

    def _fill(self) -> None:
        self._fill_scheduled = False
        ep = self.sender
        limit = self.config.transfer
        while limit is None or self.sent < limit:
            n = 1 << 16 if limit is None else min(1 << 16, limit - self.sent)
            try:
                taken = ep.send(stream_bytes(self.sent, n))
            except (BlockingIOError, OSError):
                return
            self.sent += taken
        if limit is not None and self.sent >= limit and not ep.write_shut:
            ep.shutdown(1)

    def _drain(self) -> None:
        self._drain_scheduled = False
        ep = self.receiver
        while True:
            try:
                data = ep.recv(1 << 20)
            except (BlockingIOError, OSError):
                return
            if not data:
                if self.done_time is None:
                    self.done_time = self.clock.now()
                return
            if data != stream_bytes(self.received, len(data)):
                self.intact = False
            self.received += len(data)
            if self.config.transfer is not None and self.received >= self.config.transfer \
                    and self.done_time is None:
                self.done_time = self.clock.now()

    # --- sampling --------------------------------------------------------------------------

    def _sample(self) -> None:
        now = self.clock.now()
        ep = self.sender
        s = ep.sender
        got = self.received - self._last_received
        self._last_received = self.received
        b = self.bottleneck
        sample = Sample(
            t=now - self.start_time, cwnd=s.cc.cwnd, ssthresh=min(s.cc.ssthresh, 1 << 40),
            inflight=s.sendmap.pipe(s.flight), pacing_rate=s.pacing_rate() * 8,
            delivery_rate=s.rate.latest.rate * 8, goodput=got * 8 / self.config.interval,
            srtt=s.rtt.srtt, rtt=s.rtt.latest, min_rtt=s.rtt.min_rtt,
            queue_bytes=b.queue_bytes, queue_delay=b.queue_delay,
            retransmits=s.retransmits_total, rtos=int(self.pair.a.stats["tcp.rto"]),
            state=str(getattr(getattr(s.cc, "mode", None), "value", "")) or
            ("recovery" if s.recovery.in_recovery else
             "ss" if s.cc.in_slow_start else "ca"))
        self.samples.append(sample)
        if self.on_sample is not None:
            self.on_sample(self, sample)
        if self.done_time is None:
            self.clock.call_later(self.config.interval, self._sample)

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> SimResult:
        c = self.config
        self._connect()
        self.start_time = self.clock.now()
        wire0 = self.bottleneck.wire_bytes
        self.clock.call_later(c.interval, self._sample)
        self._fill()
        end = self.start_time + c.seconds
        self.clock.run_until(lambda: self.done_time is not None, c.seconds)
        elapsed = (self.done_time or min(self.clock.now(), end)) - self.start_time
        return SimResult(c, self.samples, self._summary(elapsed,
                                                        self.bottleneck.wire_bytes - wire0))

    def _summary(self, elapsed: float, wire: int) -> dict[str, Any]:
        c = self.config
        s = self.sender.sender
        stats = self.pair.a.stats
        warm = min(2.0, elapsed / 4)
        steady = [x for x in self.samples if x.t >= warm] or self.samples
        delays = sorted(x.queue_delay for x in steady) or [0.0]
        queues = [x.queue_bytes for x in steady] or [0]
        segs = max(s.segs_out, 1)
        pacer = s.pacer
        elapsed = max(elapsed, 1e-9)
        return {
            "seconds": elapsed,
            "delivered_bytes": self.received,
            "intact": self.intact,
            "goodput": self.received * 8 / elapsed,
            "goodput_ratio": self.received * 8 / elapsed / c.rate,
            "utilisation": wire * 8 / elapsed / c.rate,
            "steady_goodput_ratio": statistics.fmean(x.goodput for x in steady) / c.rate
            if steady else 0.0,
            "retransmits": s.retransmits_total,
            "retransmit_ratio": s.retransmits_total / segs,
            "rtos": stats["tcp.rto"],
            "tlp_probes": stats["tcp.tlp_probes"],
            "fast_recoveries": stats["tcp.fast_recovery"],
            "dsacks": stats["tcp.dsack_received"],
            "queue_drops": self.bottleneck.stats["tx.queue_dropped"],
            "random_drops": self.bottleneck.stats["tx.lost_random"]
            + self.bottleneck.stats["tx.lost_burst"] + self.bottleneck.stats["tx.lost_explicit"],
            "queue_delay_mean": statistics.fmean(delays),
            "queue_delay_p95": delays[int(0.95 * (len(delays) - 1))],
            "queue_delay_max": delays[-1],
            "standing_queue_bdp": statistics.median(queues) / max(c.bdp, 1),
            "max_queue_bdp": max(queues) / max(c.bdp, 1),
            "srtt": s.rtt.srtt,
            "min_rtt": s.rtt.min_rtt,
            "pacing_spacing": pacer.spacing if pacer is not None else 0.0,
            "pacing_spacing_target": pacer.target_spacing if pacer is not None else 0.0,
            "pacing_waits": pacer.waits if pacer is not None else 0,
            "bdp_bytes": c.bdp,
        }


def run(config: SimConfig) -> SimResult:
    return Simulation(config).run()
