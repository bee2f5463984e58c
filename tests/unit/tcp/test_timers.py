# SPDX-License-Identifier: MIT
"""Keep-alives (RFC 1122 4.2.3.6; SO_KEEPALIVE, TCP_KEEPIDLE/KEEPINTVL/KEEPCNT) and
the user timeout (RFC 5482, TCP_USER_TIMEOUT), on the virtual clock."""

from __future__ import annotations

import errno
import socket

import pytest

from tests.unit.tcp.helpers import (
    ACK,
    RST,
    connect,
    established_peer,
    keepalive,
    pair,
    segments,
    state_of,
)
from ustack.transport.tcp.state import State

TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)


def test_rfc1122_4_2_3_6_keepalive_probes_idle_connection() -> None:
    conn = established_peer(setup=keepalive())
    assert conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
    conn.peer.nothing(9.99)
    probe = conn.expect(0.02)
    # the probe: no data, one below SND.NXT, to draw an ACK (RFC 1122 4.2.3.6)
    assert probe.flags == ACK and not probe.payload
    assert probe.seq == (conn.rcv_nxt - 1) & 0xFFFFFFFF
    conn.send(ACK)  # the peer is alive
    conn.peer.nothing(9.9)  # the next probe comes after another idle period
    assert conn.expect(0.2).flags == ACK
    assert conn.peer.stack.stats["tcp.keepalive_probes"] == 2
    assert conn.ep.state is State.ESTABLISHED


def test_rfc1122_4_2_3_6_keepalive_expiry_etimedout() -> None:
    conn = established_peer(setup=keepalive(idle=10, intvl=5, cnt=3))
    start = conn.peer.p.clock.now()
    times = []
    for _ in range(3):
        assert conn.peer.wait(100)
        times.append(round(conn.peer.p.clock.now() - start, 3))
        assert conn.expect().flags == ACK
    assert times == [10.0, 15.0, 20.0]
    assert conn.peer.wait(100)
    assert round(conn.peer.p.clock.now() - start, 3) == 25.0
    assert conn.expect().flags & RST  # the peer, should it be there, learns it too (Linux)
    assert conn.ep.state is State.CLOSED
    with pytest.raises(TimeoutError) as info:
        conn.sock.recv(10)
    assert info.value.errno == errno.ETIMEDOUT
    assert conn.peer.stack.stats["tcp.keepalive_timeouts"] == 1


def test_keepalive_timer_restarts_with_traffic() -> None:
    conn = established_peer(setup=keepalive(idle=10))
    conn.peer.run(8)
    conn.send(ACK, payload=b"hello")
    conn.take()
    conn.peer.nothing(9.9)  # idle is measured from the last segment received
    assert conn.expect(0.2).flags == ACK


def test_keepalive_between_two_stacks_keeps_connection() -> None:
    p = pair()
    c = connect(p, client_setup=keepalive(idle=60, intvl=10, cnt=2))
    p.run(3600)
    assert c.cep.state is State.ESTABLISHED
    assert p.a.stats["tcp.keepalive_probes"] == 60
    assert p.a.stats["tcp.keepalive_timeouts"] == 0


def test_keepalive_enabled_after_connect() -> None:
    p = pair()
    c = connect(p)
    c.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
    c.client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    p.link_a.written = []
    p.run(30.01)
    assert [s.flags for s in segments(p.link_a.written)] == [ACK]


def test_keepalive_inherited_by_accepted_socket() -> None:
    p = pair()
    c = connect(p, server_setup=keepalive(idle=20))
    assert c.server.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    p.link_b.written = []
    p.run(20.01)
    assert [s.flags for s in segments(p.link_b.written)] == [ACK]


def test_no_keepalive_by_default() -> None:
    p = pair()
    c = connect(p)
    p.link_a.written, p.link_b.written = [], []
    p.run(3 * 3600)
    assert segments(p.link_a.written) == [] and segments(p.link_b.written) == []
    assert c.cep.state is State.ESTABLISHED


# --- TCP_USER_TIMEOUT ---------------------------------------------------------------------------


def test_rfc5482_user_timeout_aborts_unacknowledged_data() -> None:
    conn = established_peer()
    conn.peer.run(100)  # a long idle period first: the timeout counts from the send
    conn.sock.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, 5000)
    assert conn.sock.getsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT) == 5000
    conn.sock.send(b"data")
    start = conn.peer.p.clock.now()
    conn.sock.settimeout(None)
    with pytest.raises(TimeoutError) as info:
        conn.sock.recv(10)
    assert info.value.errno == errno.ETIMEDOUT
    assert conn.peer.p.clock.now() - start == pytest.approx(5.0)
    assert conn.ep.state is State.CLOSED
    sent = conn.take()
    assert len([s for s in sent if s.payload == b"data"]) == 3  # at 0, 1 and 3 seconds


def test_user_timeout_counts_from_the_last_progress() -> None:
    conn = established_peer(setup=lambda s: s.setsockopt(socket.IPPROTO_TCP,
                                                         TCP_USER_TIMEOUT, 5000))
    conn.sock.send(b"one")
    seg = conn.expect()
    conn.peer.run(4)
    conn.take()
    conn.ack_all([seg])
    conn.send(ACK)  # progress at t=4
    conn.sock.send(b"two")
    conn.peer.run(4)
    assert conn.ep.state is State.ESTABLISHED  # 8 s since the first send, 4 since progress
    conn.peer.run(1.1)
    assert state_of(conn.ep) is State.CLOSED


def test_user_timeout_limits_syn_retransmissions() -> None:
    p = pair()
    p.link_a.peer = None
    cli = p.a.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, 2500)
    start = p.clock.now()
    with pytest.raises(TimeoutError):
        cli.connect(("10.0.0.2", 80))
    assert p.clock.now() - start <= 3.0


def test_keepalive_not_fooled_by_unacceptable_segments() -> None:
    """Out-of-window junk on the 4-tuple does not count as a sign of life."""
    conn = established_peer(setup=keepalive(idle=10, intvl=5, cnt=2))
    for _ in range(30):
        conn.peer.run(1)
        conn.send(ACK, seq=conn.snd_nxt + 10_000_000, payload=b"junk")
    assert conn.ep.state is State.CLOSED
    assert conn.peer.stack.stats["tcp.keepalive_timeouts"] == 1

