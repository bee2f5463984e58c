# SPDX-License-Identifier: MIT
"""Connection teardown (RFC 9293 3.6): normal, simultaneous and half close, TIME-WAIT
for 2*MSL and the 4-tuple's reuse after it, abortive closes (unread data per RFC 2525
2.17, SO_LINGER 0), lingering close, and the FIN-WAIT-2 timeout of orphans."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from tests.unit.tcp.helpers import (
    ACK,
    AF4,
    AF6,
    FIN,
    RST,
    connect,
    ep_of,
    established_peer,
    listen,
    pair,
    pump,
    segments,
    state_of,
)
from ustack.transport.tcp.state import State

LINGER0 = struct.pack("ii", 1, 0)


@pytest.mark.parametrize("family", [AF4, AF6], ids=["ipv4", "ipv6"])
def test_rfc9293_3_6_normal_close(family: int) -> None:
    p = pair()
    c = connect(p, family)
    p.link_a.written, p.link_b.written = [], []
    c.client.sendall(b"last words")
    c.client.close()
    p.run(0.001)
    assert c.cep.state is State.FIN_WAIT_2
    assert c.server.recv(100) == b"last words"
    assert c.server.recv(100) == b""
    assert c.server.recv(100) == b""  # end of stream stays
    assert c.sep.state is State.CLOSE_WAIT
    c.server.sendall(b"reply to nobody")  # CLOSE-WAIT may still send
    p.run(0.001)
    # the orphaned client resets data it can no longer deliver (Linux, RFC 9293 3.10.7.4)
    assert state_of(c.cep) is State.CLOSED
    assert p.a.stats["tcp.data_after_close"] == 1
    with pytest.raises(ConnectionResetError):
        c.server.send(b"more")


def test_rfc9293_3_6_close_sequence_and_time_wait() -> None:
    p = pair(tcp_a={"msl": 30.0})
    c = connect(p)
    p.link_a.written, p.link_b.written = [], []
    c.client.close()
    p.run(0.001)
    assert c.cep.state is State.FIN_WAIT_2
    assert c.server.recv(10) == b""
    c.server.close()
    p.run(0.001)
    assert c.sep.state is State.CLOSED
    assert state_of(c.cep) is State.TIME_WAIT
    a = segments(p.link_a.written)
    b = segments(p.link_b.written)
    assert [s.flags for s in a] == [FIN | ACK, ACK]
    assert [s.flags for s in b] == [ACK, FIN | ACK]
    assert b[0].ack == (a[0].seq + 1) & 0xFFFFFFFF
    assert a[1].ack == (b[1].seq + 1) & 0xFFFFFFFF
    p.run(60.0 - 0.01)
    assert state_of(c.cep) is State.TIME_WAIT
    p.run(0.02)
    assert state_of(c.cep) is State.CLOSED


def test_rfc9293_3_6_time_wait_holds_the_port_then_4_tuple_reusable() -> None:
    p = pair()
    srv = listen(p.b)
    cli = p.a.socket(AF4, socket.SOCK_STREAM)
    cli.settimeout(5)
    cli.bind(("0.0.0.0", 40000))
    cli.connect(("10.0.0.2", 80))
    conn, _ = srv.accept()
    cli.close()
    conn.close()
    p.run(0.01)
    assert ep_of(cli).state is State.TIME_WAIT
    again = p.a.socket(AF4, socket.SOCK_STREAM)
    with pytest.raises(OSError) as info:
        again.bind(("0.0.0.0", 40000))
    assert info.value.errno == errno.EADDRINUSE
    p.run(60.0)
    assert ep_of(cli).state is State.CLOSED
    again.settimeout(5)
    again.bind(("0.0.0.0", 40000))
    again.connect(("10.0.0.2", 80))  # the same 4-tuple
    conn2, addr = srv.accept()
    assert addr == ("10.0.0.1", 40000)
    again.sendall(b"second life")
    conn2.settimeout(1)
    assert conn2.recv(100) == b"second life"


def test_rfc9293_3_10_7_4_time_wait_acks_retransmitted_fin_and_restarts_2msl() -> None:
    conn = established_peer()
    conn.sock.close()
    fin = conn.expect()
    assert fin.flags == FIN | ACK
    conn.rcv_nxt += 1
    conn.send(FIN | ACK)
    ack = conn.expect()
    assert ack.flags == ACK and ack.ack == conn.snd_nxt
    assert conn.ep.state is State.TIME_WAIT
    conn.peer.run(50)
    conn.send(FIN | ACK, seq=conn.snd_nxt - 1)  # our ACK was lost: the FIN again
    again = conn.expect()
    assert again.flags == ACK and again.ack == conn.snd_nxt
    conn.peer.run(50)
    assert conn.ep.state is State.TIME_WAIT  # 2*MSL restarted at the retransmission
    conn.peer.run(10.1)
    assert state_of(conn.ep) is State.CLOSED


def test_rfc9293_figure_13_simultaneous_close_scripted() -> None:
    conn = established_peer()
    conn.sock.shutdown(socket.SHUT_WR)
    fin = conn.expect()
    assert fin.flags == FIN | ACK and conn.ep.state is State.FIN_WAIT_1
    # the peer's FIN crosses ours: it does not acknowledge our FIN yet
    conn.send(FIN | ACK)
    ack = conn.expect()
    assert ack.flags == ACK and ack.ack == conn.snd_nxt
    assert state_of(conn.ep) is State.CLOSING
    conn.rcv_nxt += 1
    conn.send(ACK)
    conn.peer.nothing()
    assert state_of(conn.ep) is State.TIME_WAIT
    assert conn.sock.recv(10) == b""


def test_rfc9293_figure_13_simultaneous_close_two_stacks() -> None:
    p = pair()
    c = connect(p)
    c.client.shutdown(socket.SHUT_WR)
    c.server.shutdown(socket.SHUT_WR)
    p.run(0.01)
    assert c.cep.state is State.TIME_WAIT and c.sep.state is State.TIME_WAIT
    assert c.client.recv(10) == b"" and c.server.recv(10) == b""
    p.run(61)
    assert state_of(c.cep) is State.CLOSED and state_of(c.sep) is State.CLOSED


@pytest.mark.parametrize("family", [AF4, AF6], ids=["ipv4", "ipv6"])
def test_rfc9293_3_6_half_close_data_flows_the_other_way(family: int) -> None:
    p = pair()
    c = connect(p, family)
    c.client.sendall(b"request")
    c.client.shutdown(socket.SHUT_WR)
    p.run(0.01)
    assert c.cep.state is State.FIN_WAIT_2
    assert c.server.recv(100) == b"request"
    assert c.server.recv(100) == b""
    with pytest.raises(BrokenPipeError):
        c.client.send(b"after shutdown")
    reply = bytes(range(256)) * 1000
    assert pump(p, [(c.server, c.client, reply)]) == [reply]
    c.server.close()
    p.run(0.01)
    assert c.client.recv(100) == b""
    assert state_of(c.cep) is State.TIME_WAIT
    p.run(120)
    assert state_of(c.cep) is State.CLOSED  # a shutdown() FIN-WAIT-2 is not orphaned: it waited


def test_rfc2525_2_17_close_with_unread_data_sends_rst() -> None:
    p = pair()
    c = connect(p)
    c.client.sendall(b"unread")
    p.run(0.01)
    p.link_b.written = []
    c.server.close()
    p.run(0.01)
    rst = segments(p.link_b.written)
    assert [s.flags for s in rst] == [RST | ACK]
    assert c.sep.state is State.CLOSED
    assert c.cep.state is State.CLOSED
    with pytest.raises(ConnectionResetError) as info:
        c.client.recv(10)
    assert info.value.errno == errno.ECONNRESET
    assert p.a.stats["tcp.resets_received"] == 1


def test_so_linger_zero_abortive_close() -> None:
    p = pair()
    c = connect(p)
    c.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    assert c.client.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER) == LINGER0
    c.client.sendall(b"x" * 100)
    p.run(0.01)
    p.link_a.written = []
    c.client.close()
    p.run(0.01)
    out = segments(p.link_a.written)
    assert [s.flags for s in out] == [RST | ACK]
    assert c.cep.state is State.CLOSED  # no TIME-WAIT
    assert c.server.recv(1000) == b"x" * 100  # what arrived before the RST is still read
    with pytest.raises(ConnectionResetError):
        c.server.recv(1000)


def test_so_linger_positive_waits_for_the_fin_to_be_acked() -> None:
    p = pair(latency=0.1)
    c = connect(p)
    c.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 5))
    start = p.clock.now()
    c.client.sendall(b"y" * 50000)
    c.client.close()
    assert 0.15 < p.clock.now() - start < 1.0
    assert c.cep.state is State.FIN_WAIT_2
    assert pump(p, [(c.client, c.server, b"")]) == [b""]
    got = b""
    while chunk := c.server.recv(65536):
        got += chunk
    assert got == b"y" * 50000


def test_fin_wait_2_timeout_for_orphans() -> None:
    p = pair(tcp_a={"fin_timeout": 60.0})
    c = connect(p)
    c.client.close()
    p.run(0.01)
    assert c.cep.state is State.FIN_WAIT_2
    p.run(59.9)
    assert c.cep.state is State.FIN_WAIT_2
    p.run(0.2)
    assert state_of(c.cep) is State.CLOSED
    # the server's late FIN now meets no connection: RST
    p.link_a.written = []
    c.server.close()
    p.run(0.01)
    assert [s.flags for s in segments(p.link_a.written)] == [RST]


def test_close_in_syn_sent_sends_nothing_more() -> None:
    p = pair()
    p.link_b.peer = None  # b never hears the SYN
    cli = p.a.socket(AF4, socket.SOCK_STREAM)
    cli.setblocking(False)
    cli.connect_ex(("10.0.0.2", 80))
    p.run(0.01)
    p.link_a.written = []
    cli.close()
    p.run(10)
    assert segments(p.link_a.written) == []
    assert ep_of(cli).state is State.CLOSED


def test_fin_is_retransmitted() -> None:
    conn = established_peer()
    conn.sock.close()
    fin = conn.expect()
    again = conn.expect(1.0)
    assert again.flags == FIN | ACK and again.seq == fin.seq
    conn.rcv_nxt += 1
    conn.send(ACK)
    conn.peer.nothing()
    assert conn.ep.state is State.FIN_WAIT_2


def test_shutdown_read_then_recv_returns_eof() -> None:
    p = pair()
    c = connect(p)
    c.client.shutdown(socket.SHUT_RD)
    assert c.client.recv(10) == b""
    c.client.sendall(b"still sending")
    assert c.server.recv(100) == b"still sending"


def test_send_on_unconnected_socket_enotconn() -> None:
    p = pair()
    s = p.a.socket(AF4, socket.SOCK_STREAM)
    with pytest.raises(OSError) as info:
        s.send(b"x")
    assert info.value.errno == errno.ENOTCONN
    with pytest.raises(OSError) as info:
        s.shutdown(socket.SHUT_WR)
    assert info.value.errno == errno.ENOTCONN
    _ = ACK


@pytest.mark.parametrize("wait", [0.05, 2.0], ids=["new-isn-in-window", "new-isn-beyond"])
def test_rfc6191_syn_for_time_wait_4_tuple_opens_new_connection(wait: float) -> None:
    """The server closed first and holds the 4-tuple in TIME-WAIT; the client's new SYN
    from the same port, clearly newer (RFC 1122 4.2.2.13, RFC 6191: a higher sequence
    number or timestamp), ends TIME-WAIT and reaches the listener at once."""
    p = pair()
    srv = listen(p.b)
    cli = p.a.socket(AF4, socket.SOCK_STREAM)
    cli.settimeout(5)
    cli.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    cli.bind(("0.0.0.0", 40001))
    cli.connect(("10.0.0.2", 80))
    conn, _ = srv.accept()
    conn.sendall(b"bye")
    conn.close()
    assert cli.recv(10) == b"bye"
    assert cli.recv(10) == b""
    cli.close()
    p.run(0.01)
    assert ep_of(conn).state is State.TIME_WAIT and ep_of(cli).state is State.CLOSED
    p.run(wait)
    again = p.a.socket(AF4, socket.SOCK_STREAM)
    again.settimeout(5)
    again.bind(("0.0.0.0", 40001))
    start = p.clock.now()
    again.connect(("10.0.0.2", 80))
    assert p.clock.now() - start < 0.1  # no SYN retransmission was needed
    new, addr = srv.accept()
    assert addr == ("10.0.0.1", 40001)
    assert p.b.stats["tcp.time_wait_recycled"] == 1
    again.sendall(b"hello again")
    new.settimeout(1)
    assert new.recv(100) == b"hello again"
