# SPDX-License-Identifier: MIT
"""What keeps a keep-alive connection alive, and when it ends (RFC 1122 4.2.3.6, RFC 5482):
only a segment that passed its checks, ACK included, is a sign of life (Linux updates
rcv_tstamp in tcp_ack); with TCP_USER_TIMEOUT set, the user timeout, not TCP_KEEPCNT,
decides when an unanswered peer is given up (Linux tcp_keepalive_timer)."""

from __future__ import annotations

import errno
import socket

import pytest

from tests.unit.tcp.helpers import ACK, RST, PeerConn, established_peer, keepalive, state_of
from ustack.transport.tcp.state import State

TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)


def _probe_and_end_times(conn: PeerConn, limit: float = 200.0) -> tuple[list[float], float]:
    """Run a silent peer until the connection ends: when each probe left, and when the
    RST that ends it did (seconds after the call)."""
    clock = conn.peer.p.clock
    start = clock.now()
    probes: list[float] = []
    while True:
        assert conn.peer.wait(limit), "the connection never ended"
        (seg,) = conn.take()
        at = round(clock.now() - start, 3)
        if seg.flags & RST:
            return probes, at
        assert seg.flags == ACK and not seg.payload, seg
        assert seg.seq == (conn.rcv_nxt - 1) & 0xFFFFFFFF  # a keep-alive probe
        probes.append(at)


def _assert_timed_out(conn: PeerConn) -> None:
    assert state_of(conn.ep) is State.CLOSED
    assert conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ETIMEDOUT
    assert conn.peer.stack.stats["tcp.keepalive_timeouts"] == 1


# --- item: a segment dropped for its ACK is no sign of life -----------------------------------

BAD_ACKS = pytest.mark.parametrize("offset", [1000, -200_000],
                                   ids=["ack-of-unsent-data", "ack-too-old-rfc5961"])


@BAD_ACKS
def test_rfc1122_4_2_3_6_segment_dropped_for_its_ack_does_not_restart_idle(offset: int) -> None:
    conn = established_peer(setup=keepalive(idle=10, intvl=5, cnt=2))
    conn.peer.run(8)
    conn.send(ACK, ack=conn.rcv_nxt + offset)  # in window, but its ACK is unacceptable
    challenge = conn.expect()  # RFC 5961 5.2 / RFC 9293: answered with an ACK, then dropped
    assert challenge.flags == ACK and challenge.seq == conn.rcv_nxt & 0xFFFFFFFF
    assert conn.peer.stack.stats["tcp.bad_ack"] == 1
    # idle still counts from the handshake: the first probe at 10 s, not at 8 + 10 s
    conn.peer.nothing(1.99)
    probe = conn.expect(0.02)
    assert probe.flags == ACK and probe.seq == (conn.rcv_nxt - 1) & 0xFFFFFFFF


@BAD_ACKS
def test_rfc1122_4_2_3_6_segments_dropped_for_their_ack_do_not_answer_probes(
        offset: int) -> None:
    conn = established_peer(setup=keepalive(idle=10, intvl=5, cnt=2))
    start = conn.peer.p.clock.now()
    probes: list[float] = []
    clock = conn.peer.p.clock
    while conn.ep.state is State.ESTABLISHED and clock.now() - start < 60:
        conn.peer.run(1)
        for seg in conn.take():
            if seg.seq == (conn.rcv_nxt - 1) & 0xFFFFFFFF:
                probes.append(round(clock.now() - start))
                # the "answer" acknowledges data never sent: it must not count
                conn.send(ACK, ack=conn.rcv_nxt + offset)
    # KEEPCNT = 2 probes at 10 and 15 s, then the end at 20 s, as for a silent peer
    assert probes == [10, 15]
    assert round(clock.now() - start) == 20
    _assert_timed_out(conn)
    assert conn.peer.stack.stats["tcp.bad_ack"] == 2


def test_acceptable_answer_to_a_probe_still_keeps_the_connection() -> None:
    """The counterpart: an answer whose ACK is acceptable resets the probe count."""
    conn = established_peer(setup=keepalive(idle=10, intvl=5, cnt=2))
    for _ in range(4):  # many more rounds than KEEPCNT
        assert conn.peer.wait(20)
        probe = conn.expect()
        assert probe.seq == (conn.rcv_nxt - 1) & 0xFFFFFFFF
        conn.send(ACK)
    assert conn.ep.state is State.ESTABLISHED
    assert conn.peer.stack.stats["tcp.keepalive_probes"] == 4


# --- item: TCP_USER_TIMEOUT overrides TCP_KEEPCNT ----------------------------------------------

def test_keepalive_without_user_timeout_ends_after_keepcnt_probes() -> None:
    conn = established_peer(setup=keepalive(idle=10, intvl=5, cnt=2))
    probes, end = _probe_and_end_times(conn)
    assert (probes, end) == ([10.0, 15.0], 20.0)
    _assert_timed_out(conn)


def test_rfc5482_user_timeout_longer_than_keepcnt_probes_keeps_probing() -> None:
    conn = established_peer(setup=keepalive(idle=10, intvl=5, cnt=2))
    conn.sock.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, 22_000)
    probes, end = _probe_and_end_times(conn)
    # KEEPCNT would end it at 20 s; the user timeout lets probing go on until the first
    # timer that finds the peer silent for at least 22 s (Linux: no clamp to the timeout)
    assert (probes, end) == ([10.0, 15.0, 20.0], 25.0)
    _assert_timed_out(conn)


def test_rfc5482_user_timeout_shorter_than_keepidle_still_sends_one_probe() -> None:
    conn = established_peer(setup=keepalive(idle=10, intvl=5, cnt=9))
    conn.sock.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, 3_000)
    probes, end = _probe_and_end_times(conn)
    assert (probes, end) == ([10.0], 15.0)  # at least one probe before giving up
    _assert_timed_out(conn)


def test_rfc5482_user_timeout_counts_from_the_last_segment_received() -> None:
    conn = established_peer(setup=keepalive(idle=10, intvl=5, cnt=2))
    conn.sock.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, 22_000)
    assert conn.peer.wait(20)
    conn.expect()  # the first probe, at 10 s
    conn.send(ACK)  # answered: silence starts again here
    probes, end = _probe_and_end_times(conn)
    assert (probes, end) == ([10.0, 15.0, 20.0], 25.0)
    _assert_timed_out(conn)
