# SPDX-License-Identifier: MIT
"""Reset processing in every state (RFC 9293 3.10.7), the blind-attack mitigations of
RFC 5961 (exact-sequence RSTs, challenge ACKs for in-window RSTs and SYNs, the ACK
acceptability range, the challenge-ACK rate limit) and RFC 1337 (TIME-WAIT ignores RST)."""

from __future__ import annotations

import errno
import socket

import pytest

from tests.unit.tcp.helpers import (
    ACK,
    FIN,
    RST,
    SYN,
    PeerConn,
    RawPeer,
    ep_of,
    established_peer,
    listener_of,
    peer_listen_accept,
    state_of,
    syn_sent,
)
from ustack.transport.tcp.state import State
from ustack.wire import tcp as wire


def _drive(conn: PeerConn, state: State) -> None:
    """Take an ESTABLISHED connection (the stack as client) to ``state``."""
    if state is State.ESTABLISHED:
        return
    if state in (State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSING, State.TIME_WAIT):
        conn.sock.shutdown(socket.SHUT_WR)
        assert conn.expect().flags & FIN
        if state is State.FIN_WAIT_2:
            conn.rcv_nxt += 1
            conn.send(ACK)
        elif state is State.CLOSING:
            conn.send(FIN | ACK)
            conn.rcv_nxt += 1
        elif state is State.TIME_WAIT:
            conn.rcv_nxt += 1
            conn.send(FIN | ACK)
    elif state in (State.CLOSE_WAIT, State.LAST_ACK):
        conn.send(FIN | ACK)
        assert conn.expect().flags == ACK
        if state is State.LAST_ACK:
            conn.sock.shutdown(socket.SHUT_WR)
            assert conn.expect().flags & FIN
            conn.rcv_nxt += 1
    conn.take()
    assert conn.ep.state is state


RESET_OUTCOME = {
    State.ESTABLISHED: errno.ECONNRESET,
    State.FIN_WAIT_1: errno.ECONNRESET,
    State.FIN_WAIT_2: errno.ECONNRESET,
    State.CLOSE_WAIT: errno.ECONNRESET,
    # RFC 9293 only says "enter CLOSED" here; the socket may still be open, and FreeBSD
    # and Linux both report the reset to it (the FreeBSD suite checks SO_ERROR)
    State.CLOSING: errno.ECONNRESET,
    State.LAST_ACK: errno.ECONNRESET,
}


@pytest.mark.parametrize("state", list(RESET_OUTCOME), ids=lambda s: s.label)
def test_rfc9293_3_10_7_4_exact_rst_closes_in_state(state: State) -> None:
    conn = established_peer()
    _drive(conn, state)
    conn.send(RST, seq=conn.snd_nxt)
    conn.peer.nothing()
    assert conn.ep.state is State.CLOSED
    assert conn.ep.error == RESET_OUTCOME[state]
    assert conn.peer.stack.stats["tcp.resets_received"] == 1


def test_rfc9293_3_10_7_4_rst_makes_recv_and_send_fail() -> None:
    conn = established_peer()
    conn.send(RST | ACK, seq=conn.snd_nxt)
    with pytest.raises(ConnectionResetError):
        conn.sock.recv(10)
    with pytest.raises(BrokenPipeError):  # the error was reported once; then EPIPE
        conn.sock.send(b"x")


@pytest.mark.parametrize("state", list(RESET_OUTCOME), ids=lambda s: s.label)
def test_rfc5961_3_2_in_window_rst_draws_challenge_ack(state: State) -> None:
    conn = established_peer()
    _drive(conn, state)
    conn.send(RST, seq=conn.snd_nxt + 100)
    challenge = conn.expect()
    assert challenge.flags == ACK
    assert challenge.ack == conn.snd_nxt & 0xFFFFFFFF
    fin_unacked = state is State.FIN_WAIT_1  # SND.NXT is past our unacknowledged FIN
    assert challenge.seq == (conn.rcv_nxt + fin_unacked) & 0xFFFFFFFF
    assert conn.ep.state is state
    assert conn.peer.stack.stats["tcp.challenge_acks"] == 1


def test_rfc5961_3_2_out_of_window_rst_ignored() -> None:
    conn = established_peer()
    for seq in (conn.snd_nxt - 10, conn.snd_nxt + 70000, conn.snd_nxt + (1 << 31)):
        conn.send(RST, seq=seq)
    conn.peer.nothing()
    assert conn.ep.state is State.ESTABLISHED
    stats = conn.peer.stack.stats
    assert stats["tcp.drop.out_of_window"] == 3
    assert stats["tcp.challenge_acks"] == 0


def test_rfc1337_time_wait_ignores_rst() -> None:
    conn = established_peer()
    _drive(conn, State.TIME_WAIT)
    conn.send(RST, seq=conn.snd_nxt)
    conn.peer.nothing()
    assert conn.ep.state is State.TIME_WAIT
    assert conn.peer.stack.stats["tcp.rfc1337_rst_ignored"] == 1
    conn.peer.run(60.1)
    assert state_of(conn.ep) is State.CLOSED


def test_rfc9293_3_10_7_3_syn_sent_rst_with_acceptable_ack_refuses() -> None:
    peer = RawPeer.create()
    cli, syn = syn_sent(peer)
    peer.send(0, syn.seq + 1, RST | ACK)
    peer.nothing()
    assert ep_of(cli).state is State.CLOSED
    assert cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED


@pytest.mark.parametrize("ack_offset", [None, 0, 2], ids=["no-ack", "ack-iss", "ack-beyond"])
def test_rfc9293_3_10_7_3_syn_sent_rst_without_acceptable_ack_ignored(
        ack_offset: int | None) -> None:
    peer = RawPeer.create()
    cli, syn = syn_sent(peer)
    if ack_offset is None:
        peer.send(0, 0, RST)
    else:
        peer.send(0, syn.seq + ack_offset, RST | ACK)
    peer.nothing()  # never a RST for a RST
    assert ep_of(cli).state is State.SYN_SENT


def test_rfc9293_3_10_7_4_syn_received_rst_returns_passive_open_to_listen() -> None:
    peer = RawPeer.create()
    srv = peer.listen()
    srv.setblocking(False)
    listener = ep_of(srv).listener
    assert listener is not None
    peer.send(1000, 0, SYN, options=wire.TCPOptions(mss=1460))
    synack = peer.expect()
    assert len(listener.pending) == 1
    peer.send(1001, 0, RST)
    peer.nothing()
    assert not listener.pending and ep_of(srv).state is State.LISTEN
    with pytest.raises(BlockingIOError):
        srv.accept()
    peer.nothing(5)  # no SYN-ACK retransmissions for the dead child
    # the listener still works
    peer.send(2000, 0, SYN, options=wire.TCPOptions(mss=1460))
    again = peer.expect()
    assert (again.flags == SYN | ACK and again.seq != synack.seq) or again.ack == 2001


def test_rfc9293_3_10_7_4_syn_received_active_rst_refuses() -> None:
    """After a simultaneous open, a RST in SYN-RECEIVED refuses the connection."""
    peer = RawPeer.create()
    cli, _syn = syn_sent(peer)
    peer.send(300, 0, SYN, options=wire.TCPOptions(mss=1460))
    assert peer.expect().flags == SYN | ACK
    assert ep_of(cli).state is State.SYN_RECEIVED
    peer.send(301, 0, RST)
    assert ep_of(cli).state is State.CLOSED
    assert cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED


def test_rfc9293_3_10_7_4_syn_received_bad_ack_draws_rst() -> None:
    peer = RawPeer.create()
    srv = peer.listen()
    peer.send(1000, 0, SYN, options=wire.TCPOptions(mss=1460))
    synack = peer.expect()
    peer.send(1001, synack.seq + 10, ACK)
    rst = peer.expect()
    assert rst.flags == RST and rst.seq == (synack.seq + 10) & 0xFFFFFFFF
    assert len(listener_of(srv).pending) == 1


# --- RFC 5961 -----------------------------------------------------------------------------------


def test_rfc5961_4_2_in_window_syn_draws_challenge_ack() -> None:
    conn = established_peer()
    conn.send(SYN, seq=conn.snd_nxt + 5, options=wire.TCPOptions(mss=1460))
    challenge = conn.expect()
    assert challenge.flags == ACK and challenge.ack == conn.snd_nxt & 0xFFFFFFFF
    assert conn.ep.state is State.ESTABLISHED
    # a SYN at exactly rcv_nxt too (RFC 5961 4.2: any SYN, wherever it falls)
    conn.send(SYN, seq=conn.snd_nxt)
    assert conn.expect().flags == ACK
    assert conn.peer.stack.stats["tcp.challenge_acks"] == 2


def test_rfc5961_5_2_ack_beyond_snd_nxt_challenged_and_dropped() -> None:
    conn = established_peer()
    conn.send(ACK, ack=conn.rcv_nxt + 1000, payload=b"ignored")
    challenge = conn.expect()
    assert challenge.flags == ACK and challenge.ack == conn.snd_nxt - 7 & 0xFFFFFFFF
    conn.snd_nxt -= 7  # the data was dropped with the segment
    assert conn.ep.receiver.buffered == 0
    assert conn.peer.stack.stats["tcp.bad_ack"] == 1
    conn.send(ACK, payload=b"kept")
    assert conn.expect().ack == conn.snd_nxt & 0xFFFFFFFF
    assert conn.sock.recv(10) == b"kept"


def test_rfc5961_5_2_ack_too_old_challenged_and_dropped() -> None:
    conn = established_peer()
    conn.send(ACK, ack=conn.rcv_nxt - 200000, payload=b"ignored")
    challenge = conn.expect()
    assert challenge.flags == ACK
    assert conn.ep.receiver.buffered == 0
    assert conn.peer.stack.stats["tcp.bad_ack"] == 1


def test_rfc5961_5_2_old_but_acceptable_ack_keeps_data() -> None:
    conn = established_peer()
    conn.sock.send(b"a" * 100)
    data = conn.expect()
    conn.ack_all([data])
    conn.send(ACK)
    conn.take()
    # an ACK below SND.UNA but within MAX.SND.WND: a duplicate, its data is taken
    conn.send(ACK, ack=conn.rcv_nxt - 50, payload=b"fine")
    assert conn.expect().ack == conn.snd_nxt & 0xFFFFFFFF
    assert conn.sock.recv(10) == b"fine"
    assert conn.peer.stack.stats["tcp.bad_ack"] == 0


def test_rfc5961_7_challenge_ack_rate_limit() -> None:
    conn = established_peer(tcp_a={"challenge_ack_limit": 3})
    for i in range(10):
        conn.send(RST, seq=conn.snd_nxt + 1 + i)
    assert len(conn.take()) == 3
    stats = conn.peer.stack.stats
    assert stats["tcp.challenge_acks"] == 3 and stats["tcp.challenge_acks_suppressed"] == 7
    assert conn.ep.state is State.ESTABLISHED
    conn.peer.run(1.0)  # the bucket refills
    conn.send(RST, seq=conn.snd_nxt + 1)
    assert len(conn.take()) == 1


def test_rfc5961_disabled_in_window_rst_resets() -> None:
    conn = established_peer(tcp_a={"rfc5961": False})
    conn.send(RST, seq=conn.snd_nxt + 100)
    conn.peer.nothing()
    assert conn.ep.state is State.CLOSED


def test_rfc9293_3_10_7_4_segment_without_ack_dropped() -> None:
    conn = established_peer()
    conn.send(0, payload=b"noack")
    conn.peer.nothing()
    assert conn.ep.receiver.buffered == 0
    assert conn.peer.stack.stats["tcp.drop.bad_segment"] == 1


def test_accepted_connection_reset_before_accept_is_still_returned() -> None:
    peer = RawPeer.create()
    conn, _ = peer_listen_accept(peer)
    conn.send(ACK, payload=b"abc")
    conn.send(RST, seq=conn.snd_nxt)
    assert conn.sock.recv(10) == b"abc"
    with pytest.raises(ConnectionResetError):
        conn.sock.recv(10)
