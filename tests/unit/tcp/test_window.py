# SPDX-License-Identifier: MIT
"""Flow control and ACK policy: the zero window and persist probes (RFC 9293 3.8.6.1),
receiver silly-window avoidance (3.8.6.2.2), delayed ACKs (RFC 1122 4.2.3.2, RFC 9293
3.8.6.3), Nagle (RFC 9293 3.7.4) vs TCP_NODELAY, TCP_CORK, and receive-buffer
auto-tuning growing the advertised window."""

from __future__ import annotations

import hashlib
import itertools
import socket

import pytest

from tests.unit.tcp.helpers import (
    ACK,
    DONTWAIT,
    PSH,
    connect,
    established_peer,
    pair,
    pattern,
    pump,
    segments,
    tap,
)


def NODELAY(s: socket.socket) -> None:  # a setup hook, named like the flag
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _fill(sock: socket.socket, data: bytes) -> int:
    """Send without blocking until the buffer is full; returns bytes taken."""
    sent = 0
    while sent < len(data):
        try:
            sent += sock.send(data[sent:sent + 65536], DONTWAIT)
        except BlockingIOError:
            break
    return sent


# --- zero window and persist --------------------------------------------------------------------


def test_rfc9293_3_8_6_1_zero_window_persist_probes_back_off() -> None:
    conn = established_peer(mss=1000)
    conn.sock.send(b"a" * 3000)
    segs = conn.take()
    conn.ack_all(segs)
    conn.send(ACK, window=0)  # everything acked, and the window is closed
    conn.sock.send(b"b" * 500)
    conn.peer.nothing()
    start = conn.peer.p.clock.now()
    times = []
    for _ in range(4):
        assert conn.peer.wait(100)
        probe = conn.expect()
        times.append(round(conn.peer.p.clock.now() - start, 3))
        # a probe carries no new data: seq = SND.UNA - 1 draws the window in an ACK
        assert probe.flags == ACK and not probe.payload
        assert probe.seq == (conn.rcv_nxt - 1) & 0xFFFFFFFF
        conn.send(ACK, window=0)
    assert times[0] == 1.0
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] < gaps[1] < gaps[2]  # exponential backoff
    assert conn.peer.stack.stats["tcp.window_probes"] == 4
    assert conn.ep.state.name == "ESTABLISHED"
    conn.send(ACK, window=4000)  # the window opens: the data goes at once
    data = conn.expect()
    assert data.payload == b"b" * 500


def test_zero_window_until_reader_reads_then_transfer_completes() -> None:
    p = pair(tcp_b={"rcvbuf": 32768, "moderate_rcvbuf": False}, latency=0.001)
    c = connect(p)
    data = pattern(600_000, seed=3)
    sent = _fill(c.client, data)
    p.run(0.5)
    # the receiver's buffer is full (to within one window-scale unit: windows round down)
    assert 32768 - 128 < c.sep.receiver.buffered <= 32768
    assert c.cep.sender.snd_wnd == 0
    assert c.server.tcp_info().rcv_wnd < 128
    p.run(30)  # the application does not read: probes, and the connection survives
    probes = p.a.stats["tcp.window_probes"]
    assert probes >= 3
    assert c.cep.state.name == "ESTABLISHED"
    got = bytearray()
    while len(got) < len(data):
        try:
            got += c.server.recv(65536, DONTWAIT)
        except BlockingIOError:
            sent += _fill(c.client, data[sent:]) if sent < len(data) else 0
            p.run(0.01)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert p.a.stats["tcp.rto"] == 0


def test_lost_window_update_recovered_by_persist_probe() -> None:
    p = pair(tcp_b={"rcvbuf": 16384, "moderate_rcvbuf": False})
    c = connect(p)
    _fill(c.client, bytes(100_000))
    p.run(0.1)
    assert c.cep.sender.snd_wnd == 0
    state = {"drop": True}

    def rule(seg: object) -> str | None:
        if state["drop"] and seg is not None and getattr(seg, "window", 0) > 0:
            state["drop"] = False
            return "drop"  # the first window update is lost
        return None

    dropper = tap(p, "b", rule)
    assert len(c.server.recv(16384)) > 16384 - 128
    p.run(0.01)
    assert len(dropper.dropped) == 1
    assert c.cep.sender.snd_wnd == 0  # the sender did not hear it...
    probes = p.a.stats["tcp.window_probes"]
    p.run(3.0)
    assert p.a.stats["tcp.window_probes"] > probes  # ...until a probe drew it again
    assert c.sep.receiver.buffered > 16384 - 128  # and the freed buffer filled again


def test_rfc9293_3_8_6_2_2_receiver_sws_avoidance() -> None:
    conn = established_peer(tcp_a={"rcvbuf": 8192, "moderate_rcvbuf": False}, mss=1000)
    for _ in range(8):
        conn.send(ACK, payload=bytes(1024))
    acks = conn.take()
    assert acks[-1].window == 0
    # reading 100 bytes must not advertise a 100-byte window
    assert len(conn.sock.recv(100)) == 100
    conn.peer.nothing()
    assert len(conn.sock.recv(1000)) == 1000
    conn.peer.nothing()  # 1100 free: below min(rcvbuf/2, 2 * MSS) = 2048
    assert len(conn.sock.recv(1000)) == 1000
    update = conn.expect()
    assert update.flags == ACK and update.window == 2100
    # a segment beyond the window is dropped, but ACKed
    conn.send(ACK, payload=bytes(3000))
    conn.snd_nxt -= 3000 - 2100
    ack = conn.expect(0.5)
    assert ack.ack == conn.snd_nxt & 0xFFFFFFFF and ack.window == 0


def test_rfc9293_3_8_6_2_1_data_beyond_window_trimmed() -> None:
    conn = established_peer(tcp_a={"rcvbuf": 4096, "moderate_rcvbuf": False})
    conn.send(ACK, payload=b"q" * 5000)
    ack = conn.expect(0.1)
    assert ack.ack == (conn.snd_nxt - 5000 + 4096) & 0xFFFFFFFF
    assert conn.sock.recv(10000) == b"q" * 4096


# --- delayed ACKs -------------------------------------------------------------------------------


def _no_quickack(s: socket.socket) -> None:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)


def test_rfc1122_4_2_3_2_quickack_at_connection_start() -> None:
    conn = established_peer()
    conn.send(ACK, payload=b"x" * 100)
    assert conn.expect().ack == conn.snd_nxt  # at once: still in quick-ACK mode


def test_rfc1122_4_2_3_2_delayed_ack_after_40ms() -> None:
    conn = established_peer(setup=_no_quickack)
    conn.send(ACK | PSH, payload=b"x" * 100)
    conn.peer.nothing(0.039)
    ack = conn.expect(0.002)
    assert ack.flags == ACK and ack.ack == conn.snd_nxt
    assert conn.peer.stack.stats["tcp.delayed_acks"] == 1


def test_rfc9293_3_8_6_3_every_second_full_segment_acked_at_once() -> None:
    conn = established_peer(setup=_no_quickack)
    conn.send(ACK, payload=bytes(1460))
    conn.peer.nothing()
    conn.send(ACK, payload=bytes(1460))
    ack = conn.expect()
    assert ack.ack == conn.snd_nxt
    conn.send(ACK, payload=bytes(1460))
    conn.peer.nothing()
    conn.send(ACK, payload=bytes(1460))
    assert conn.expect().ack == conn.snd_nxt


def test_rfc5681_4_2_out_of_order_data_acked_at_once() -> None:
    conn = established_peer(setup=_no_quickack)
    conn.send(ACK, payload=bytes(100), seq=conn.snd_nxt + 100)
    assert conn.expect().ack == conn.snd_nxt  # a duplicate ACK, immediately
    conn.send(ACK, payload=bytes(100))  # fills the hole: immediately too
    conn.snd_nxt += 100
    assert conn.expect().ack == conn.snd_nxt


def test_delayed_ack_piggybacks_on_reply() -> None:
    conn = established_peer(setup=_no_quickack)
    conn.send(ACK | PSH, payload=b"request")
    conn.sock.settimeout(0)
    assert conn.sock.recv(100) == b"request"
    conn.sock.send(b"reply")
    seg = conn.expect()
    assert seg.payload == b"reply" and seg.ack == conn.snd_nxt
    conn.peer.nothing(0.1)  # no separate ACK follows


# --- Nagle, TCP_NODELAY, TCP_CORK ---------------------------------------------------------------


def test_rfc9293_3_7_4_nagle_holds_small_segments_while_data_unacked() -> None:
    conn = established_peer()
    conn.sock.send(b"a")
    first = conn.expect()
    assert first.payload == b"a"
    conn.sock.send(b"b")
    conn.sock.send(b"c")
    conn.peer.nothing()  # one small segment unacknowledged: wait
    conn.ack_all([first])
    conn.send(ACK)
    assert conn.expect().payload == b"bc"


def test_tcp_nodelay_sends_small_segments_at_once() -> None:
    conn = established_peer(setup=NODELAY)
    assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    for ch in b"abc":
        conn.sock.send(bytes([ch]))
    assert [s.payload for s in conn.take()] == [b"a", b"b", b"c"]


def test_tcp_cork_holds_partial_segments_until_uncorked() -> None:
    conn = established_peer(setup=NODELAY)
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    conn.sock.send(b"header;")
    conn.sock.send(b"body")
    conn.peer.nothing(1.0)
    conn.sock.send(bytes(2000))  # a full segment goes, the rest waits
    segs = conn.take()
    assert [len(s.payload) for s in segs] == [1460]
    assert segs[0].payload.startswith(b"header;body")
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
    assert [len(s.payload) for s in conn.take()] == [2011 - 1460]


def test_nagle_minshall_tail_of_a_write_goes_with_full_segments() -> None:
    """Only an unacknowledged *small* segment holds the next small one (Linux's Minshall
    check): the tail of a write is not held behind full segments waiting for a delayed
    ACK."""
    conn = established_peer(setup=_no_quickack)
    conn.sock.send(bytes(1460 * 3 + 10))
    assert [len(s.payload) for s in conn.take()] == [1460, 1460, 1460, 10]
    conn.sock.send(bytes(20))  # a small segment is outstanding: this one waits
    conn.peer.nothing()


# --- receive buffer auto-tuning -------------------------------------------------------------------


def test_receive_buffer_autotuning_grows_the_window() -> None:
    p = pair(latency=0.02)
    c = connect(p)
    start = c.server.tcp_info()
    assert start.rcv_space == 131072
    p.link_b.written = []
    data = pattern(6_000_000, seed=5)
    assert pump(p, [(c.client, c.server, data)]) == [data]
    end = c.server.tcp_info()
    assert end.rcv_space > 2 * start.rcv_space
    windows = [s.window << 7 for s in segments(p.link_b.written)]
    assert max(windows) > 2 * 131072
    assert end.rcv_space <= 6 * 1024 * 1024


@pytest.mark.parametrize("enabled", [False])
def test_autotuning_off_keeps_the_buffer(enabled: bool) -> None:
    p = pair(tcp_b={"moderate_rcvbuf": enabled}, latency=0.02)
    c = connect(p)
    data = pattern(1_000_000, seed=6)
    assert pump(p, [(c.client, c.server, data)]) == [data]
    assert c.server.tcp_info().rcv_space == 131072
