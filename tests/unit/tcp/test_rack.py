# SPDX-License-Identifier: MIT
"""The ``rack`` stack against the ``default`` one: RACK-TLP (RFC 8985) repairs a tail
loss with a probe where RFC 6675 needs a retransmission timeout, D-SACK widens RACK's
reordering window so reordering stops causing spurious retransmissions, PRR (RFC 6937)
paces the sends of fast recovery, and a stretch ACK's burst is spread out."""

from __future__ import annotations

import math
import socket
from typing import Any

from tests.unit.tcp.helpers import (
    ACK,
    PeerConn,
    Seg,
    connect,
    established_peer,
    pair,
    pattern,
    pump,
    tap,
)
from ustack.sim import SimConfig, run
from ustack.wire import tcp as wire

MSS = 1000


def NODELAY(s: socket.socket) -> None:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _sack(*blocks: tuple[int, int]) -> wire.TCPOptions:
    return wire.TCPOptions(sack_blocks=tuple((a & 0xFFFFFFFF, b & 0xFFFFFFFF)
                                             for a, b in blocks))


# --- PRR, segment by segment against a scripted receiver ------------------------------------


def _recovery_sends(stack: str, cc: str = "newreno") -> tuple[list[list[Seg]], Any]:
    """20 segments in flight, the first lost; the peer SACKs the others one ACK at a time.
    Returns what the stack sent after each ACK."""
    conn = established_peer(sack=True, mss=MSS, setup=NODELAY,
                            tcp_a={"tcp_stack": stack, "congestion_control": cc})
    s = conn.ep.sender
    s.cc.cwnd = 20 * MSS  # as in RFC 6937's example
    conn.sock.send(bytes(60 * MSS))
    flight = conn.take()
    assert len(flight) == 20
    conn.peer.p.clock.advance(0.05)  # the ACKs come an RTT later
    una = flight[0].seq
    sends = []
    for k in range(1, 20):
        conn.send(ACK, ack=una, options=_sack((una + MSS, una + (k + 1) * MSS)))
        sends.append(conn.take())
    return sends, conn


def _proportional(counts: list[int], ssthresh: int, recover_fs: int, acks: int) -> None:
    """RFC 6937: while pipe > ssthresh, prr_out = ceil(prr_delivered * ssthresh / RecoverFS)
    (one segment delivered per ACK; the first ACK sends the retransmission)."""
    total = 0
    for d in range(1, acks + 1):
        total += counts[d - 1]
        assert total == math.ceil(d * ssthresh / recover_fs), (d, counts)


def test_rfc6937_prr_rack_sends_one_segment_every_other_ack() -> None:
    sends, conn = _recovery_sends("rack")
    s = conn.ep.sender
    counts = [len(x) for x in sends]
    # dupacks 1 and 2: one new segment each (the SACKed one left the pipe); the third
    # SACKed segment lets RACK declare the first lost (reo_wnd is 0 before reordering is
    # seen): the retransmission, then PRR sends on every second ACK (ssthresh = 11 of the
    # 22 in flight), as RFC 6937's Reno example
    assert counts[:3] == [1, 1, 1]
    assert sends[2][0].seq == s.snd_una and len(sends[2][0].payload) == MSS
    assert counts[3:15] == [0, 1] * 6
    _proportional(counts[2:], 11, 22, 12)
    info = conn.sock.tcp_info()
    assert info.tcp_stack == "rack" and info.recovery == "rack" and info.ca_state == "recovery"
    assert info.ssthresh == 11 * MSS
    # then the reduction bound: one for one once pipe reached ssthresh, where it stays
    assert counts[-2:] == [1, 1]
    assert s.sendmap.pipe(s.flight) == 11 * MSS


def test_rfc6937_prr_cubic_sends_seven_of_ten() -> None:
    sends, conn = _recovery_sends("rack", "cubic")
    s = conn.ep.sender
    counts = [len(x) for x in sends]
    assert counts[:3] == [1, 1, 1]
    assert s.cc.ssthresh == 14 * MSS  # beta_cubic 0.7 of the 20-segment window
    _proportional(counts[2:], 14, 22, 10)
    assert s.sendmap.pipe(s.flight) == 14 * MSS


def test_rfc6675_default_stack_holds_back_then_sends_every_ack() -> None:
    """The contrast RFC 6937 draws: RFC 6675 waits until pipe falls below cwnd (half
    an RTT of silence), then sends one segment per ACK."""
    sends, _conn = _recovery_sends("default")
    counts = [len(x) for x in sends]
    assert counts[:2] == [1, 1]  # RFC 3042 limited transmit: one new segment per dupack
    assert counts[2] == 1  # the fast retransmission
    assert counts[3:11] == [0] * 8
    assert counts[-5:] == [1] * 5


# --- TLP: a tail loss ---------------------------------------------------------------------------


def _tail_drop(stack: str, last: int = 1) -> tuple[dict[str, int], float, Any]:
    p = pair(tcp_a={"tcp_stack": stack}, latency=0.01)
    c = connect(p, client_setup=NODELAY)
    data = pattern(20 * 1448, seed=3)
    seen: list[int] = []
    total = len(data)

    def rule(seg: Seg | None) -> str | None:
        if seg is None or not seg.payload or seg.seq in seen:
            return None
        seen.append(seg.seq)
        end_offset = (seg.seq - c.cep.sender.iss - 1) & 0xFFFFFFFF
        if end_offset >= total - last * 1448:
            return "drop"  # the first transmission of the last ``last`` segments
        return None

    tap(p, "a", rule)
    start = p.clock.now()
    got = pump(p, [(c.client, c.server, data)])
    assert got == [data]
    stats = dict(p.a.stats.counters)
    return stats, p.clock.now() - start, c


def test_rfc8985_tlp_repairs_tail_loss_without_rto() -> None:
    stats, _took, c = _tail_drop("rack")
    assert stats.get("tcp.rto", 0) == 0
    assert stats["tcp.tlp_probes"] == 1
    info = c.client.tcp_info()
    assert info.tlp_probes == 1 and info.tcp_stack == "rack"
    assert info.cwnd >= 10 * info.snd_mss  # no RTO: the window did not collapse
    default_stats, _t, d = _tail_drop("default")
    assert default_stats["tcp.rto"] == 1  # nothing after the loss to draw duplicate ACKs
    assert default_stats.get("tcp.tlp_probes", 0) == 0
    assert d.client.tcp_info().ssthresh < info.ssthresh


def test_rfc8985_tlp_timing_two_srtt_before_the_rto() -> None:
    """With two segments lost at the tail the probe is due 2*SRTT after the last ACK
    (no delayed-ACK allowance: more than one segment is in flight), long before the
    RTO's 200 ms floor; the probe's SACK lets RACK repair the other one."""
    stats, took, _c = _tail_drop("rack", last=2)
    assert stats.get("tcp.rto", 0) == 0 and stats["tcp.tlp_probes"] == 1
    assert stats["tcp.fast_recovery"] == 1
    default_stats, default_took, _d = _tail_drop("default", last=2)
    assert default_stats["tcp.rto"] == 1
    assert took < default_took - 0.1


def test_rfc8985_tlp_then_rack_repairs_three_tail_losses() -> None:
    stats, _took, _c = _tail_drop("rack", last=3)
    assert stats.get("tcp.rto", 0) == 0
    assert stats["tcp.tlp_probes"] == 1  # the probe draws a SACK; RACK finds the other two
    assert stats["tcp.fast_recovery"] == 1
    default_stats, _t, _c2 = _tail_drop("default", last=3)
    assert default_stats["tcp.rto"] >= 1


# --- reordering: D-SACK widens the window ------------------------------------------------------


def _reordered(stack: str) -> dict[str, Any]:
    # 10 Mbit/s (1.2 ms per frame), RTT 40 ms, 2% of frames held back 6 ms: each one is
    # overtaken by ~5 frames, enough for three duplicate ACKs, far less than min_RTT/4
    # (a 100 kB receive window keeps the queue from overflowing: no real loss at all)
    return run(SimConfig(cc="newreno", stack=stack, rate=10e6, rtt=0.04, queue_bdp=4,
                         rcvbuf=100_000, reorder=0.02, reorder_delay=0.006, seconds=4.0,
                         seed=5)).summary


def test_rfc8985_dsack_adapted_reordering_window_avoids_spurious_retransmits() -> None:
    rack = _reordered("rack")
    default = _reordered("default")
    assert rack["intact"] and default["intact"]
    # nothing was lost: every retransmission is spurious (and comes back as a D-SACK)
    assert rack["random_drops"] == default["random_drops"] == 0
    assert rack["queue_drops"] == default["queue_drops"] == 0
    assert default["retransmits"] >= 10  # three duplicate ACKs at every reordering
    assert default["dsacks"] == default["retransmits"]
    assert rack["retransmits"] <= 2  # the first reordering event, before any D-SACK
    assert rack["dsacks"] == rack["retransmits"] >= 1
    assert rack["goodput_ratio"] > default["goodput_ratio"]


# --- burst mitigation --------------------------------------------------------------------------


def _stretch_ack(stack: str) -> tuple[list[float], PeerConn]:
    conn = established_peer(sack=True, mss=MSS, setup=NODELAY, window=60000,
                            tcp_a={"tcp_stack": stack})
    clock = conn.peer.p.clock
    conn.ep.sender.cc.cwnd = 40 * MSS
    conn.sock.send(bytes(100 * MSS))
    assert len(conn.take()) == 40
    # 20 ms later one stretch ACK covers everything: the window opens 40 segments at once
    clock.advance(0.02)
    conn.send(ACK, ack=conn.ep.sender.snd_max)
    times = []
    for _ in range(40):
        got = conn.take()
        times += [clock.now()] * len(got)
        clock.advance(0.0005)
    return times, conn


def test_rack_burst_mitigation_spreads_a_stretch_ack_burst() -> None:
    default, _ = _stretch_ack("default")
    rack, conn = _stretch_ack("rack")
    assert len(default) >= 30 and len(set(default)) == 1  # all at once
    assert len(rack) >= 30
    burst = sum(1 for t in rack if t == rack[0])
    assert burst <= 11  # max_burst segments back to back (the last may overdraw) ...
    assert rack[-1] - rack[0] > 0.004  # ... the rest spread at twice cwnd/SRTT
    assert conn.sock.tcp_info().pacing_waits > 0
