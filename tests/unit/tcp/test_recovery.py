# SPDX-License-Identifier: MIT
"""Loss recovery without a timeout: fast retransmit on three duplicate ACKs (RFC 5681
3.2) with limited transmit (RFC 3042), NewReno partial ACKs (RFC 6582) for peers without
SACK, SACK-based recovery (RFC 6675), SACK blocks (RFC 2018) and D-SACK (RFC 2883)."""

from __future__ import annotations

import socket

import pytest

from tests.unit.tcp.helpers import (
    ACK,
    PeerConn,
    Seg,
    connect,
    drop_nth_data,
    established_peer,
    pair,
    pattern,
    pump,
    tap,
)
from ustack.wire import tcp as wire


def NODELAY(s: socket.socket) -> None:  # a setup hook, named like the flag
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _flight(conn: PeerConn, n: int, size: int = 1000) -> list[Seg]:
    conn.sock.send(b"".join(bytes([i]) * size for i in range(n)))
    segs = conn.take()
    return segs


def _sack(conn: PeerConn, *blocks: tuple[int, int]) -> wire.TCPOptions:
    return wire.TCPOptions(sack_blocks=tuple((a & 0xFFFFFFFF, b & 0xFFFFFFFF)
                                             for a, b in blocks))


def test_rfc5681_3_2_fast_retransmit_on_third_dupack_newreno() -> None:
    conn = established_peer(mss=1000, setup=NODELAY)
    segs = _flight(conn, 10)
    assert len(segs) == 10  # the initial window: 10 segments (RFC 6928)
    una = segs[0].seq
    start = conn.peer.p.clock.now()
    conn.send(ACK, ack=una)
    conn.send(ACK, ack=una)
    conn.peer.nothing()
    conn.send(ACK, ack=una)
    rexmit = conn.expect()
    assert rexmit.seq == una and rexmit.payload == segs[0].payload
    assert conn.peer.p.clock.now() == start
    info = conn.sock.tcp_info()
    assert info.ca_state == "recovery" and info.recovery == "newreno"
    assert info.ssthresh == 5000  # half the flight (RFC 5681 eq. 4)
    stats = conn.peer.stack.stats
    assert stats["tcp.fast_recovery"] == 1 and stats["tcp.rto"] == 0
    conn.send(ACK, ack=segs[-1].seq + 1000)
    info = conn.sock.tcp_info()
    assert info.ca_state == "open" and info.cwnd <= 5000 + 1000


def test_rfc3042_limited_transmit_on_first_two_dupacks() -> None:
    conn = established_peer(mss=1000, setup=NODELAY)
    conn.sock.send(bytes(15000))
    segs = conn.take()
    assert len(segs) == 10
    una = segs[0].seq
    conn.send(ACK, ack=una)
    new1 = conn.expect()
    conn.send(ACK, ack=una)
    new2 = conn.expect()
    assert new1.seq == segs[-1].seq + 1000 and new2.seq == new1.seq + 1000
    conn.send(ACK, ack=una)
    assert conn.expect().seq == una  # the third: fast retransmit


def test_rfc6582_newreno_partial_ack_retransmits_next_hole() -> None:
    conn = established_peer(mss=1000, setup=NODELAY)
    segs = _flight(conn, 10)
    una = segs[0].seq
    for _ in range(3):  # segments 1 and 5 were lost; 2, 3, 4 arrived
        conn.send(ACK, ack=una)
    assert conn.expect().seq == una
    for _ in range(5):  # 6..10 arrive: more duplicates inflate the window (RFC 6582 3.2 4)
        conn.send(ACK, ack=una)
    conn.take()
    conn.send(ACK, ack=segs[4].seq)  # partial: up to the second hole
    hole = conn.take()
    assert hole and hole[0].seq == segs[4].seq and hole[0].payload == segs[4].payload
    assert conn.sock.tcp_info().ca_state == "recovery"
    conn.send(ACK, ack=segs[-1].seq + 1000)
    info = conn.sock.tcp_info()
    assert info.ca_state == "open"
    stats = conn.peer.stack.stats
    assert stats["tcp.rto"] == 0 and stats["tcp.fast_recovery"] == 1
    assert stats["tcp.retransmitted_segments"] == 2


def test_rfc6675_sack_recovery_retransmits_every_hole_at_once() -> None:
    conn = established_peer(mss=1000, sack=True, setup=NODELAY)
    segs = _flight(conn, 10)
    una = segs[0].seq
    s = [seg.seq for seg in segs]
    # segments 1 and 5 lost: the peer SACKs 2..4, then 6..10
    conn.send(ACK, ack=una, options=_sack(conn, (s[1], s[2])))
    conn.send(ACK, ack=una, options=_sack(conn, (s[1], s[3])))
    out = conn.take()
    conn.send(ACK, ack=una, options=_sack(conn, (s[1], s[4])))
    out += conn.take()
    assert any(o.seq == una for o in out)  # three segments SACKed above it: lost
    for k in range(6, 11):
        end = s[k] if k < 10 else s[9] + 1000
        conn.send(ACK, ack=una, options=_sack(conn, (s[5], end), (s[1], s[4])))
        out += conn.take()
    retransmitted = [o.seq for o in out if o.seq in s]
    assert retransmitted == [s[0], s[4]]  # the second hole before any cumulative ACK
    assert conn.sock.tcp_info().ca_state == "recovery"
    assert conn.sock.tcp_info().recovery == "rfc6675"
    conn.send(ACK, ack=s[9] + 1000)
    assert conn.sock.tcp_info().ca_state == "open"
    assert conn.peer.stack.stats["tcp.rto"] == 0


def test_rfc2883_dsack_reports_duplicate_segment() -> None:
    conn = established_peer(sack=True)
    conn.send(ACK, payload=b"a" * 100)
    first = conn.expect()
    assert first.ack == conn.snd_nxt
    conn.send(ACK, payload=b"a" * 100, seq=conn.snd_nxt - 100)  # a duplicate
    dup_ack = conn.expect()
    assert dup_ack.options.sack_blocks == (((conn.snd_nxt - 100) & 0xFFFFFFFF,
                                            conn.snd_nxt & 0xFFFFFFFF),)
    assert conn.sock.recv(1000) == b"a" * 100
    # a partial duplicate: the D-SACK block covers only the repeated part
    conn.send(ACK, payload=b"b" * 100, seq=conn.snd_nxt - 50)
    conn.snd_nxt += 50
    partial = conn.expect()
    assert partial.ack == conn.snd_nxt & 0xFFFFFFFF
    assert partial.options.sack_blocks[0] == ((conn.snd_nxt - 100) & 0xFFFFFFFF,
                                              (conn.snd_nxt - 50) & 0xFFFFFFFF)


def test_rfc2883_dsack_off_without_sack() -> None:
    conn = established_peer(sack=False)
    conn.send(ACK, payload=b"a" * 100)
    conn.expect()
    conn.send(ACK, payload=b"a" * 100, seq=conn.snd_nxt - 100)
    assert conn.expect().options.sack_blocks == ()


def test_rfc2018_4_sack_blocks_most_recent_first() -> None:
    conn = established_peer(sack=True, ts=True)
    base = conn.snd_nxt
    blocks_seen = []
    for k in (1, 3, 5, 7):  # four islands beyond a hole at base
        conn.send(ACK, payload=b"x" * 100, seq=base + k * 100)
        ack = conn.expect()
        assert ack.ack == base & 0xFFFFFFFF  # immediately, for out-of-order data
        blocks_seen.append(ack.options.sack_blocks)
    assert blocks_seen[0] == ((base + 100, base + 200),)
    # with timestamps at most three blocks fit; the newest first
    assert blocks_seen[3] == ((base + 700, base + 800), (base + 500, base + 600),
                              (base + 300, base + 400))
    # filling the hole joins the first island; the rest is still reported
    conn.send(ACK, payload=b"x" * 100, seq=base)
    ack = conn.expect()
    assert ack.ack == (base + 200) & 0xFFFFFFFF
    assert set(ack.options.sack_blocks) == {(base + 300, base + 400), (base + 500, base + 600),
                                            (base + 700, base + 800)}
    assert conn.sock.recv(1000) == b"x" * 200


@pytest.mark.parametrize("sack", [True, False], ids=["rfc6675", "newreno"])
def test_losses_in_bulk_recovered_without_rto(sack: bool) -> None:
    p = pair(tcp_a={"sack": sack}, latency=0.005)
    c = connect(p)
    dropper = tap(p, "a", drop_nth_data(20, 45, 47, 90))
    data = pattern(400_000)
    assert pump(p, [(c.client, c.server, data)]) == [data]
    assert len(dropper.dropped) == 4
    stats = p.a.stats
    assert stats["tcp.rto"] == 0
    assert stats["tcp.fast_recovery"] >= 1
    assert stats["tcp.retransmitted_segments"] == 4
    info = c.client.tcp_info()
    assert info.total_retrans == 4 and info.bytes_retrans == 4 * info.snd_mss
    assert info.recovery == ("rfc6675" if sack else "newreno")


def test_rfc2018_8_rto_forgets_sacks_of_a_reneging_receiver() -> None:
    """A receiver may discard data it SACKed (RFC 2018 section 8). When the retransmission
    timer finds the segment at SND.UNA itself SACKed, the SACKs were reneged: they are
    forgotten and the data is sent again (as Linux's tcp_timeout_mark_lost)."""
    conn = established_peer(mss=1000, sack=True, setup=NODELAY)
    segs = _flight(conn, 4)
    s = [seg.seq for seg in segs]
    conn.send(ACK, ack=s[0], options=_sack(conn, (s[1], s[3] + 1000)))
    conn.take()
    conn.send(ACK, ack=s[1])  # the first arrives; then the receiver drops what it SACKed
    conn.peer.run(5)
    again = conn.take()
    assert s[1] in [x.seq for x in again]
    assert conn.peer.stack.stats["tcp.sack_reneging"] >= 1
    conn.send(ACK, ack=s[3] + 1000)
    assert conn.sock.tcp_info().unacked == 0
