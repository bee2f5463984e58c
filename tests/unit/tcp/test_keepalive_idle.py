# SPDX-License-Identifier: MIT
"""Keep-alive probes only for an idle connection (RFC 9293 3.8.4, RFC 1122 4.2.3.6;
Linux tcp_keepalive_timer): with data in flight the retransmission timer watches the
peer, with data queued behind a zero window the persist timer does; neither counts
keepalive probes or ends the connection by keepalive."""

from __future__ import annotations

from tests.unit.tcp.helpers import ACK, established_peer, keepalive
from ustack.transport.tcp.state import State


def test_rfc9293_3_8_4_no_keepalive_probe_with_data_in_flight() -> None:
    conn = established_peer(setup=keepalive(idle=10, intvl=2, cnt=2))
    conn.sock.send(b"x" * 100)
    first = conn.expect()
    assert first.payload == b"x" * 100
    # the peer is silent for 30 s: only retransmissions of the data leave, no probe
    later = conn.take(30)
    assert later, "expected retransmissions"
    assert all(s.payload == b"x" * 100 and s.seq == first.seq for s in later), later
    stats = conn.peer.stack.stats
    assert stats["tcp.keepalive_probes"] == 0 and stats["tcp.keepalive_timeouts"] == 0
    assert conn.ep.state is State.ESTABLISHED


def test_keepalive_resumes_an_idle_period_after_the_data_is_acknowledged() -> None:
    conn = established_peer(setup=keepalive(idle=10, intvl=2, cnt=2))
    start = conn.peer.p.clock.now()
    conn.sock.send(b"y" * 50)
    seg = conn.expect()
    conn.take(12)  # retransmissions; the keepalive timer fired at 10 s and waited
    conn.ack_all([seg])
    conn.send(ACK)  # everything acknowledged at t = 12
    conn.take()
    conn.peer.nothing(9.9)
    probe = conn.expect(0.2)  # keepidle after the last segment received
    assert probe.flags == ACK and not probe.payload
    assert probe.seq == (conn.rcv_nxt - 1) & 0xFFFFFFFF
    assert round(conn.peer.p.clock.now() - start) == 22
    assert conn.peer.stack.stats["tcp.keepalive_probes"] == 1


def test_no_keepalive_probe_while_data_waits_for_a_zero_window() -> None:
    conn = established_peer(window=0, setup=keepalive(idle=10, intvl=2, cnt=2))
    conn.sock.send(b"z" * 100)  # queued: the peer's window is zero
    for _ in range(20):
        conn.peer.run(3)
        if conn.take():
            conn.send(ACK)  # the peer answers every window probe, window still zero
    stats = conn.peer.stack.stats
    assert stats["tcp.window_probes"] > 0
    assert stats["tcp.keepalive_probes"] == 0 and stats["tcp.keepalive_timeouts"] == 0
    assert conn.ep.state is State.ESTABLISHED
