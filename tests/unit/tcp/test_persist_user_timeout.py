# SPDX-License-Identifier: MIT
"""TCP_USER_TIMEOUT (RFC 5482) over zero-window probing, as Linux's tcp_probe_timer
(since 5.11): the time counts from the first window probe, answered or not, and only
a usable window (or acknowledged data) starts a new count. Without a user timeout,
answered probes keep the connection open indefinitely (RFC 1122 4.2.2.17)."""

from __future__ import annotations

import errno
import socket

import pytest

from tests.unit.tcp.helpers import ACK, PeerConn, established_peer, segments
from ustack.transport.tcp.state import State

TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)


def _zero_window_conn(user_timeout_ms: int = 0) -> PeerConn:
    def setup(s: socket.socket) -> None:
        if user_timeout_ms:
            s.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, user_timeout_ms)

    return established_peer(window=0, setup=setup)


def _state(conn: PeerConn) -> State:
    return conn.ep.state


def _probe_until_closed(conn: PeerConn, answer: bool, limit: float) -> list[float]:
    """Run until the connection closes (or ``limit`` seconds), answering each window
    probe with a zero window if ``answer``; the times of the probes."""
    clock = conn.peer.p.clock
    times: list[float] = []
    deadline = clock.now() + limit
    while conn.ep.state is not State.CLOSED and clock.now() < deadline:
        if not clock.run_until(lambda: bool(segments(conn.peer.p.link_a.written)) or
                               conn.ep.state is State.CLOSED, deadline - clock.now()):
            break
        for seg in conn.take():
            assert seg.flags == ACK and not seg.payload, seg  # a window probe
            times.append(clock.now())
            if answer:
                conn.send(ACK)
        clock.run_ready()
    return times


@pytest.mark.parametrize("answer", [True, False], ids=["probes-answered", "probes-lost"])
def test_rfc5482_user_timeout_ends_zero_window_probing(answer: bool) -> None:
    conn = _zero_window_conn(user_timeout_ms=5000)
    conn.sock.send(b"data")
    times = _probe_until_closed(conn, answer, limit=60)
    clock = conn.peer.p.clock
    assert conn.ep.state is State.CLOSED
    # five seconds after the first probe, not later: the last wait is cut short
    assert clock.now() - times[0] == pytest.approx(5.0)
    assert len(times) == 2  # at 0 and 2 s; the next (at 6 s) would be past the timeout
    with pytest.raises(TimeoutError) as info:
        conn.sock.recv(10)
    assert info.value.errno == errno.ETIMEDOUT
    assert conn.peer.stack.stats["tcp.persist_timeouts"] == 1


def test_rfc1122_4_2_2_17_answered_probes_without_user_timeout_go_on() -> None:
    conn = _zero_window_conn()
    conn.sock.send(b"data")
    times = _probe_until_closed(conn, answer=True, limit=1200)
    assert conn.ep.state is State.ESTABLISHED
    assert len(times) > 10
    assert conn.peer.stack.stats["tcp.persist_timeouts"] == 0


def test_user_timeout_counts_again_after_the_window_opened() -> None:
    conn = _zero_window_conn(user_timeout_ms=5000)
    clock = conn.peer.p.clock
    conn.sock.send(b"a" * 10)
    times = _probe_until_closed(conn, answer=True, limit=4)
    assert times and conn.ep.state is State.ESTABLISHED
    # the window opens: the data goes; it is acknowledged with the window closed again
    conn.send(ACK, window=100)
    data = conn.expect()
    assert data.payload == b"a" * 10
    conn.ack_all([data])
    conn.send(ACK, window=0)
    conn.sock.send(b"b" * 10)  # stuck again: a new count starts with the next probe
    again = _probe_until_closed(conn, answer=True, limit=4.5)
    assert again and conn.ep.state is State.ESTABLISHED
    assert clock.now() - times[0] > 5.0  # past the first count's deadline, still open
    _probe_until_closed(conn, answer=True, limit=60)
    assert _state(conn) is State.CLOSED
    assert clock.now() - again[0] == pytest.approx(5.0)
