# SPDX-License-Identifier: MIT
"""The RFC 5961 section 7 challenge-ACK limits follow the live settings: a sysctl
change (net.ipv4.tcp_challenge_ack_limit, stack-wide per second; FreeBSD's
net.inet.tcp.ack_war_timewindow / ack_war_cnt, per connection) applies at once, to
connections that already exist."""

from __future__ import annotations

from tests.unit.tcp.helpers import ACK, RST, PeerConn, established_peer, tcp
from ustack.transport.tcp import sysctl
from ustack.transport.tcp.state import State


def _challenges(conn: PeerConn, count: int = 10) -> int:
    """Send ``count`` in-window RSTs (each draws a challenge ACK if allowed); how many
    ACKs came back."""
    for i in range(count):
        conn.send(RST, seq=conn.snd_nxt + 1 + i)
    segs = conn.take()
    assert all(s.flags == ACK and not s.payload for s in segs), segs
    assert conn.ep.state is State.ESTABLISHED
    return len(segs)


def _set(conn: PeerConn, name: str, value: str) -> None:
    sysctl.apply(tcp(conn.peer.stack).config, name, value)


def test_rfc5961_7_challenge_ack_limit_follows_sysctl() -> None:
    conn = established_peer(tcp_a={"challenge_ack_limit": 3})
    assert _challenges(conn) == 3
    conn.peer.run(1.0)
    _set(conn, "net.ipv4.tcp_challenge_ack_limit", "8")
    assert _challenges(conn) == 8  # the new rate refilled the bucket, to the new burst
    conn.peer.run(1.0)
    _set(conn, "net.ipv4.tcp_challenge_ack_limit", "2")
    assert _challenges(conn) == 2  # lowered at once: the burst is capped
    conn.peer.run(1.0)
    _set(conn, "net.ipv4.tcp_challenge_ack_limit", "0")
    assert _challenges(conn) == 0  # as Linux: none at all
    stats = conn.peer.stack.stats
    assert stats["tcp.challenge_acks"] == 13 and stats["tcp.challenge_acks_suppressed"] == 27


def test_freebsd_ack_war_limit_per_connection_follows_sysctl() -> None:
    conn = established_peer()
    assert _challenges(conn) == 10  # off by default (Linux personality)
    _set(conn, "net.inet.tcp.ack_war_timewindow", "1000")
    _set(conn, "net.inet.tcp.ack_war_cnt", "5")
    assert _challenges(conn) == 5
    conn.peer.run(0.5)
    assert _challenges(conn) == 0  # the same one-second epoch
    conn.peer.run(0.6)
    assert _challenges(conn) == 5  # a new epoch
    _set(conn, "net.inet.tcp.ack_war_cnt", "0")  # FreeBSD: 0 turns the protection off
    assert _challenges(conn) == 10

