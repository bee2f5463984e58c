# SPDX-License-Identifier: MIT
"""The impairment link on the virtual clock: loss, delay, jitter, reorder, duplicates, rate."""

from __future__ import annotations

import math
import socket
import struct

import pytest

from ustack.buffer import PacketBuffer
from ustack.clock import VirtualClock
from ustack.contracts import LinkEndpoint
from ustack.link.channel import ChannelEndpoint
from ustack.link.impairment import GilbertElliott, Impairment, ImpairmentEndpoint
from ustack.stack import Stack
from ustack.testing.pair import StackPair, make_pair
from ustack.waiter import READABLE
from ustack.wire.proto import EtherType

SEQ = struct.Struct("!I")
# IPv4 (20) + UDP (8) + Ethernet (14) bytes around each datagram's payload
OVERHEAD = 42


class Receiver:
    """A UDP socket that records (virtual arrival time, payload) for every datagram."""

    def __init__(self, pair: StackPair, stack: Stack, addr: str, port: int) -> None:
        self.clock = pair.clock
        self.sock = stack.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, port))
        self.sock.setblocking(False)
        self.got: list[tuple[float, bytes]] = []
        self.sock.add_ready_callback(READABLE, self._ready)

    def _ready(self, events: int) -> None:
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            self.got.append((self.clock.now(), data))

    @property
    def payloads(self) -> list[bytes]:
        return [data for _, data in self.got]

    def seqs(self) -> list[int]:
        return [SEQ.unpack_from(data)[0] for data in self.payloads]


class Setup:
    """Stacks a (impaired, 10.0.0.1:4000) and b (10.0.0.2:5000), ARP already resolved."""

    def __init__(self, seed: int = 0, latency: float = 0.0) -> None:
        self.imp: ImpairmentEndpoint | None = None
        self.seed = seed
        self.pair = make_pair(wrap_a=self._wrap, latency=latency)
        self.clock = self.pair.clock
        self.at_b = Receiver(self.pair, self.pair.b, "10.0.0.2", 5000)
        self.at_a = Receiver(self.pair, self.pair.a, "10.0.0.1", 4000)
        # warm up: resolve ARP both ways before any impairment is switched on
        self.send_a(b"warm")
        self.send_b(b"warm")
        # (and let start-up chatter pass: MLD repeats its first reports within 1 s)
        self.clock.advance(1.1)
        assert self.at_b.payloads == [b"warm"] and self.at_a.payloads == [b"warm"]
        self.at_a.got.clear()
        self.at_b.got.clear()

    def _wrap(self, link: LinkEndpoint) -> LinkEndpoint:
        assert isinstance(link, ChannelEndpoint)
        self.imp = ImpairmentEndpoint(link, link._clock, seed=self.seed)
        return self.imp

    @property
    def link(self) -> ImpairmentEndpoint:
        assert self.imp is not None
        return self.imp

    def send_a(self, data: bytes) -> None:
        self.at_a.sock.sendto(data, ("10.0.0.2", 5000))

    def send_b(self, data: bytes) -> None:
        self.at_b.sock.sendto(data, ("10.0.0.1", 4000))


def setup(seed: int = 0, latency: float = 0.0, tx: Impairment | None = None,
          rx: Impairment | None = None) -> Setup:
    s = Setup(seed, latency)
    if tx is not None:
        s.link.tx = tx
    if rx is not None:
        s.link.rx = rx
    return s


def binomial_bounds(n: int, p: float, sigmas: float = 5.0) -> tuple[float, float]:
    mean = n * p
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return mean - spread, mean + spread


# --- loss ---------------------------------------------------------------------------------------

def test_explicit_drop_list_drops_exactly_those_frames() -> None:
    s = setup()
    first = s.link.tx_frames
    s.link.tx.drop = {first + 2, first + 5}  # the 2nd and 5th datagram from now
    for seq in range(1, 7):
        s.send_a(SEQ.pack(seq) + b"payload")
    s.clock.advance(0.1)
    assert s.at_b.seqs() == [1, 3, 4, 6]
    assert s.at_b.payloads[0] == SEQ.pack(1) + b"payload"
    stats = s.link.stats
    assert stats["tx.lost_explicit"] == 2
    assert stats["tx.passed"] == stats["tx.frames"] - 2


def test_explicit_drop_list_inbound() -> None:
    s = setup()
    first = s.link.rx_frames
    s.link.rx.drop = {first + 1, first + 3}
    for seq in range(1, 5):
        s.send_b(SEQ.pack(seq))
    s.clock.advance(0.1)
    assert s.at_a.seqs() == [2, 4]
    assert s.link.stats["rx.lost_explicit"] == 2
    assert s.link.stats["tx.lost_explicit"] == 0


def test_random_loss_within_binomial_bounds() -> None:
    n, p = 3000, 0.1
    s = setup(seed=7, tx=Impairment(loss=p))
    before = s.link.tx_frames
    for seq in range(n):
        s.send_a(SEQ.pack(seq))
        s.clock.run_ready()
    lost = n - len(s.at_b.got)
    low, high = binomial_bounds(n, p)
    assert low <= lost <= high
    assert s.link.stats["tx.lost_random"] == lost
    assert s.link.stats["tx.frames"] == s.link.tx_frames == before + n
    # surviving datagrams arrive intact and in order
    assert s.at_b.seqs() == sorted(s.at_b.seqs())
    assert all(len(data) == 4 for data in s.at_b.payloads)


def test_same_seed_same_losses_other_seed_other_losses() -> None:
    def survivors(seed: int) -> list[int]:
        s = setup(seed=seed, tx=Impairment(loss=0.3))
        for seq in range(200):
            s.send_a(SEQ.pack(seq))
            s.clock.run_ready()
        return s.at_b.seqs()

    assert survivors(3) == survivors(3)
    assert survivors(3) != survivors(4)


def test_gilbert_elliott_losses_come_in_bursts() -> None:
    n = 6000
    model = GilbertElliott(p=0.01, r=0.25)  # mean burst 4 frames, bad 1/26 of the time
    s = setup(seed=11, tx=Impairment(burst_loss=model))
    for seq in range(n):
        s.send_a(SEQ.pack(seq))
        s.clock.run_ready()
    received = set(s.at_b.seqs())
    lost = [seq for seq in range(n) if seq not in received]
    bursts: list[int] = []
    for i, seq in enumerate(lost):
        if i and seq == lost[i - 1] + 1:
            bursts[-1] += 1
        else:
            bursts.append(1)
    stationary = model.p / (model.p + model.r)
    low, high = binomial_bounds(n, stationary, sigmas=6)
    assert low <= len(lost) <= high
    mean_burst = sum(bursts) / len(bursts)
    assert 2.5 <= mean_burst <= 6.0  # Bernoulli loss at this rate would give about 1.04
    assert s.link.stats["tx.lost_burst"] == len(lost)


# --- delay, jitter, reordering ------------------------------------------------------------------

def test_fixed_delay_visible_in_virtual_time() -> None:
    s = setup(tx=Impairment(delay=0.050), rx=Impairment(delay=0.030))
    t0 = s.clock.now()
    s.send_a(b"out")
    s.clock.advance(1.0)
    s.send_b(b"back")
    t1 = s.clock.now()
    s.clock.advance(1.0)
    assert s.at_b.payloads == [b"out"] and s.at_a.payloads == [b"back"]
    assert s.at_b.got[0][0] == pytest.approx(t0 + 0.050, abs=1e-5)
    assert s.at_a.got[0][0] == pytest.approx(t1 + 0.030, abs=1e-5)
    assert s.link.stats["tx.delayed"] == 1
    assert s.link.stats["rx.delayed"] == 1


def test_ping_round_trip_includes_both_delays() -> None:
    s = setup(tx=Impairment(delay=0.020), rx=Impairment(delay=0.015))
    ping = s.pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    ping.settimeout(1.0)
    t0 = s.clock.now()
    ping.sendto(bytes([8, 0, 0, 0, 0, 0, 0, 1]) + b"rtt", ("10.0.0.2", 0))
    reply = ping.recvfrom(100)[0]
    assert reply[0] == 0 and reply[8:] == b"rtt"
    assert s.clock.now() - t0 == pytest.approx(0.035, abs=1e-4)


def test_jitter_spreads_delays_within_bounds() -> None:
    s = setup(seed=5, tx=Impairment(delay=0.050, jitter=0.020))
    delays = []
    for seq in range(200):
        t0 = s.clock.now()
        s.send_a(SEQ.pack(seq))
        s.clock.advance(0.2)
        arrived, data = s.at_b.got[-1]
        assert SEQ.unpack(data)[0] == seq
        delays.append(arrived - t0)
    assert all(0.030 - 1e-5 <= d <= 0.070 + 1e-5 for d in delays)
    assert max(delays) - min(delays) > 0.030  # spread over most of the 40 ms window
    assert sum(delays) / len(delays) == pytest.approx(0.050, abs=0.004)


def test_reordering_holds_frames_back() -> None:
    s = setup(seed=2, tx=Impairment(reorder=0.3, reorder_delay=0.010))
    for seq in range(100):
        s.send_a(SEQ.pack(seq))
    s.clock.advance(0.1)
    order = s.at_b.seqs()
    assert sorted(order) == list(range(100))
    held = [seq for seq, (t, _) in zip(order, s.at_b.got, strict=True) if t > s.at_b.got[0][0]]
    on_time = [seq for seq in order if seq not in held]
    # frames not held go at once, in order; the held ones follow 10 ms later, in order
    assert order == on_time + held
    assert held == sorted(held) and on_time == sorted(on_time)
    assert order != list(range(100))
    assert s.link.stats["tx.reordered"] == len(held)
    low, high = binomial_bounds(100, 0.3)
    assert low <= len(held) <= high


# --- duplication --------------------------------------------------------------------------------

def test_duplicates_observed_and_counted() -> None:
    n, p = 1000, 0.2
    s = setup(seed=9, tx=Impairment(duplicate=p))
    for seq in range(n):
        s.send_a(SEQ.pack(seq) + bytes(20))
        s.clock.run_ready()
    seqs = s.at_b.seqs()
    doubled = [seq for seq in range(n) if seqs.count(seq) == 2]
    assert set(seqs) == set(range(n))
    assert len(seqs) == n + len(doubled)
    assert s.link.stats["tx.duplicated"] == len(doubled)
    low, high = binomial_bounds(n, p)
    assert low <= len(doubled) <= high


def test_delayed_duplicates_keep_their_bytes() -> None:
    s = setup(tx=Impairment(duplicate=1.0, delay=0.010))
    s.pair.link_a.written = []
    s.send_a(b"twice, intact")
    s.clock.advance(0.1)
    assert s.at_b.payloads == [b"twice, intact", b"twice, intact"]
    first, second = s.pair.link_a.written
    assert first == second
    assert len(first) == OVERHEAD + len(b"twice, intact")  # one Ethernet header each


def test_inbound_duplicates_are_separate_packets() -> None:
    s = setup(rx=Impairment(duplicate=1.0))
    before = s.link.stats["rx.passed"]
    s.send_b(b"dup in")
    s.clock.advance(0.1)
    assert s.at_a.payloads == [b"dup in", b"dup in"]
    assert s.link.stats["rx.duplicated"] == 1
    assert s.link.stats["rx.passed"] == before + 2


# --- rate limit ---------------------------------------------------------------------------------

def test_rate_limit_serializes_at_the_configured_rate() -> None:
    rate = 1_000_000  # 1 Mbit/s
    size = 1000
    s = setup(tx=Impairment(rate=rate))
    t0 = s.clock.now()
    for seq in range(10):
        s.send_a(SEQ.pack(seq) + bytes(size - 4))
    s.clock.advance(1.0)
    wire_time = (size + OVERHEAD) * 8 / rate  # 8.336 ms per frame
    assert s.at_b.seqs() == list(range(10))
    for k, (arrived, _) in enumerate(s.at_b.got, start=1):
        assert arrived == pytest.approx(t0 + k * wire_time, abs=2e-5)


def test_rate_limit_queue_tail_drops() -> None:
    size = 1000
    frame = size + OVERHEAD
    s = setup(tx=Impairment(rate=1_000_000, queue_limit=4 * frame + 100))
    for seq in range(10):
        s.send_a(SEQ.pack(seq) + bytes(size - 4))
    assert s.link.tx_backlog == 4 * frame
    s.clock.advance(1.0)
    assert s.at_b.seqs() == [0, 1, 2, 3]
    assert s.link.stats["tx.queue_dropped"] == 6
    assert s.link.tx_backlog == 0
    # once drained, the queue takes frames again
    s.send_a(SEQ.pack(99) + bytes(size - 4))
    s.clock.advance(0.1)
    assert s.at_b.seqs()[-1] == 99


def test_rate_and_delay_add_up() -> None:
    s = setup(tx=Impairment(rate=8_000_000, delay=0.005))
    t0 = s.clock.now()
    s.send_a(bytes(958))  # 1000 bytes on the wire: 1 ms at 8 Mbit/s
    s.clock.advance(0.1)
    assert s.at_b.got[0][0] == pytest.approx(t0 + 0.006, abs=2e-5)


# --- the wrapper itself -------------------------------------------------------------------------

def test_no_impairment_passes_synchronously_in_one_batch() -> None:
    clock = VirtualClock()
    a, b = ChannelEndpoint.pair(clock)
    a.written = []
    imp = ImpairmentEndpoint(a, clock)
    pkts = []
    for i in range(3):
        pkt = PacketBuffer(14, bytes([i]) * 50)
        pkt.dst_link = b.link_address
        pkt.network_protocol = EtherType.IPV4
        pkts.append(pkt)
    assert imp.write_packets(pkts) == 3
    assert [f[14] for f in a.written] == [0, 1, 2]
    assert imp.stats["tx.passed"] == 3
    assert clock.wheel.count == 0


def test_close_cancels_pending_frames() -> None:
    clock = VirtualClock()
    a, b = ChannelEndpoint.pair(clock)
    a.written = []
    imp = ImpairmentEndpoint(a, clock, tx=Impairment(delay=0.5))
    pkt = PacketBuffer(14, bytes(50))
    pkt.dst_link = b.link_address
    pkt.network_protocol = EtherType.IPV4
    imp.write_packets([pkt])
    assert clock.wheel.count == 1
    imp.close()
    clock.advance(1.0)
    assert a.written == []
    assert clock.wheel.count == 0


def test_capabilities_and_addresses_are_the_inner_links() -> None:
    clock = VirtualClock()
    a, _ = ChannelEndpoint.pair(clock, mtu=9000)
    imp = ImpairmentEndpoint(a, clock)
    assert (imp.mtu, imp.capabilities, imp.max_header_length, imp.link_address) == (
        9000, a.capabilities, 14, a.link_address)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Impairment(loss=1.5)
    with pytest.raises(ValueError):
        Impairment(delay=-1.0)
