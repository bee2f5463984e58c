# SPDX-License-Identifier: MIT
"""The retransmission timer (RFC 6298): the initial RTO, doubling on expiry, the minimum
and maximum, Karn's algorithm, giving up (ETIMEDOUT); and RTT measurement with timestamps
(RFC 7323 4)."""

from __future__ import annotations

import errno
import socket

import pytest

from tests.unit.tcp.helpers import (
    ACK,
    ADDRS,
    AF4,
    SYN,
    PeerConn,
    RawPeer,
    established_peer,
)
from ustack.transport.tcp import rto
from ustack.transport.tcp.state import State
from ustack.wire import tcp as wire


def _peer_with_rtt(rtt: float, tcp_a: dict[str, object] | None = None,
                   ts: bool = False) -> PeerConn:
    """The stack connects; the peer answers the SYN after ``rtt`` (the first sample)."""
    peer = RawPeer.create(tcp_a=tcp_a)
    cli = peer.stack.socket(AF4, socket.SOCK_STREAM)
    cli.setblocking(False)
    cli.connect_ex((ADDRS[AF4][1], 5000))
    syn = peer.expect()
    peer.local_port = syn.sport
    peer.run(rtt)
    conn = PeerConn(peer, cli, 7000, syn.seq + 1, ts=ts)
    opts = wire.TCPOptions(mss=1460, timestamp=(1000, syn.timestamp[0])) if ts else \
        wire.TCPOptions(mss=1460)
    conn.send(SYN | ACK, options=opts)
    if ts:
        conn.ts_recent = syn.timestamp[0]
    assert conn.expect().flags == ACK
    cli.settimeout(5)
    return conn


def _retransmission_times(conn: PeerConn, count: int) -> tuple[list[float], int]:
    """Send one segment and record when it is retransmitted (relative to the first send)."""
    conn.sock.send(b"z" * 100)
    first = conn.expect()
    start = conn.peer.p.clock.now()
    times = []
    for _ in range(count):
        assert conn.peer.wait(1000)
        seg = conn.expect()
        assert seg.seq == first.seq and seg.payload == first.payload
        times.append(round(conn.peer.p.clock.now() - start, 4))
    return times, first.seq


def test_rfc6298_2_1_initial_rto_and_5_5_doubling() -> None:
    conn = established_peer()  # the SYN was answered at once: no RTT sample yet
    assert conn.sock.tcp_info().rto == 1.0
    times, _ = _retransmission_times(conn, 5)
    assert times == [1.0, 3.0, 7.0, 15.0, 31.0]
    info = conn.sock.tcp_info()
    assert info.retransmits == 5 and info.rto == 32.0 and info.ca_state == "loss"
    assert conn.peer.stack.stats["tcp.rto"] == 5


def test_rfc6298_2_4_rto_is_at_least_min_rto() -> None:
    conn = _peer_with_rtt(0.01)
    info = conn.sock.tcp_info()
    assert info.rtt == pytest.approx(0.01)
    assert info.rto == pytest.approx(0.2)  # 0.01 + 4 * 0.005 is below the minimum
    times, _ = _retransmission_times(conn, 2)
    assert times == [0.2, 0.6]


def test_rfc6298_2_2_first_sample_sets_rto() -> None:
    conn = _peer_with_rtt(0.5)
    info = conn.sock.tcp_info()
    assert info.rtt == pytest.approx(0.5) and info.rttvar == pytest.approx(0.25)
    assert info.rto == pytest.approx(1.5)
    assert _retransmission_times(conn, 1)[0] == [1.5]


def test_rfc6298_2_5_rto_capped_at_max_rto() -> None:
    conn = established_peer(tcp_a={"max_rto": 10.0})
    times, _ = _retransmission_times(conn, 6)
    gaps = [round(b - a, 4) for a, b in zip([0.0, *times], times, strict=False)]
    assert gaps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_rfc6298_retries_exhausted_etimedout() -> None:
    conn = established_peer(tcp_a={"retries2": 4})
    conn.sock.send(b"x" * 10)
    conn.take()
    start = conn.peer.p.clock.now()
    with pytest.raises(TimeoutError) as info:
        conn.sock.settimeout(None)
        conn.sock.recv(10)
    assert info.value.errno == errno.ETIMEDOUT
    assert conn.peer.p.clock.now() - start == pytest.approx(31.0)
    assert len(conn.take()) == 4
    assert conn.ep.state is State.CLOSED
    assert conn.peer.stack.stats["tcp.timeouts"] == 1


def test_rfc6298_3_karn_no_sample_from_retransmitted_segment() -> None:
    conn = _peer_with_rtt(0.1)
    before = conn.sock.tcp_info()
    assert before.rtt == pytest.approx(0.1)
    times, seq = _retransmission_times(conn, 1)
    assert times == [0.3]
    conn.peer.run(2.0)
    conn.take()
    conn.send(ACK, ack=seq + 100)  # ambiguous: for the original or the retransmission?
    after = conn.sock.tcp_info()
    assert after.rtt == before.rtt and after.rttvar == before.rttvar
    # the next clean exchange is sampled again and the backed-off timer collapses
    conn.rcv_nxt = seq + 100
    conn.sock.send(b"y" * 10)
    seg = conn.expect()
    conn.peer.run(0.1)
    conn.send(ACK, ack=seg.seq + 10)
    final = conn.sock.tcp_info()
    assert final.retransmits == 0
    assert final.rto == pytest.approx(0.1 + 4 * 0.75 * 0.05)  # srtt 0.1, rttvar shrinks


def test_rfc7323_4_rtt_from_timestamps_even_for_retransmissions() -> None:
    conn = _peer_with_rtt(0.1, ts=True)
    conn.sock.send(b"q" * 10)
    conn.take()
    retrans = conn.expect(0.3)
    conn.peer.run(0.05)
    tsval = retrans.timestamp[0]
    conn.send(ACK, ack=retrans.seq + 10, options=wire.TCPOptions(timestamp=(2000, tsval)))
    info = conn.sock.tcp_info()
    # the echo of the retransmission's TSval measures 50 ms unambiguously
    assert info.rtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.05, abs=0.002)


def test_rto_pure_functions() -> None:
    est = rto.RTTEstimate()
    est = rto.sample(est, 0.1, 0.001, 0.2, 120)
    assert est.srtt == 0.1 and est.rttvar == 0.05 and est.rto == pytest.approx(0.3)
    est = rto.sample(est, 0.3, 0.001, 0.2, 120)
    assert est.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.2)
    assert est.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.3)
    assert est.min_rtt == 0.1 and est.latest == 0.3
    assert rto.backoff(1.0, 120) == 2.0 and rto.backoff(100, 120) == 120
    tiny = rto.sample(rto.RTTEstimate(), 0.0001, 0.001, 0.2, 120)
    assert tiny.rto == 0.2
    huge = rto.sample(rto.RTTEstimate(), 100, 0.001, 0.2, 120)
    assert huge.rto == 120


def test_rto_retransmission_resends_from_snd_una_in_order() -> None:
    """RFC 6298 5.4 and RFC 5681 (go-back after a timeout): every unacked segment again."""
    conn = established_peer(setup=lambda s: s.setsockopt(socket.IPPROTO_TCP,
                                                          socket.TCP_NODELAY, 1))
    for _ in range(4):
        conn.sock.send(b"d" * 1000)
    firsts = conn.take()
    assert len(firsts) == 4
    first_rto = conn.expect(1.0)
    assert first_rto.seq == firsts[0].seq
    conn.send(ACK, ack=firsts[0].seq + 1000)  # the cumulative ACK moves one on
    more = conn.take()
    assert [s.seq for s in more] == [firsts[1].seq, firsts[2].seq]  # slow start: 2 segments
    conn.send(ACK, ack=firsts[2].seq + 1000)
    assert [s.seq for s in conn.take()] == [firsts[3].seq]
    conn.send(ACK, ack=firsts[3].seq + 1000)
    conn.peer.nothing(5)
