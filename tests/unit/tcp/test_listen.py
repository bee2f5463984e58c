# SPDX-License-Identifier: MIT
"""The listening socket: the accept queue and its backlog (Linux semantics: backlog N
admits N+1), overflow at the SYN and at the final ACK, SYN cookies (RFC 4987 3.6) in
"always" mode and when the SYN queue overflows, with options carried in timestamps."""

from __future__ import annotations

import errno
import socket

import pytest

from tests.unit.tcp.helpers import (
    ACK,
    AF4,
    RST,
    SYN,
    PeerConn,
    RawPeer,
    connect,
    ep_of,
    listen,
    listener_of,
    pair,
    pump,
    tcp,
)
from ustack.transport.tcp.seqnum import lt
from ustack.transport.tcp.state import State
from ustack.transport.tcp.syncookies import SynCookies
from ustack.wire import tcp as wire

SYN_OPTS = wire.TCPOptions(mss=1460, wscale=2, sack_permitted=True, timestamp=(5000, 0))


def _listener(peer: RawPeer, backlog: int = 16) -> socket.socket:
    srv = peer.listen(backlog=backlog)
    srv.settimeout(1)
    return srv


def test_backlog_bounds_accept_queue_and_late_syn_succeeds_on_retransmission() -> None:
    p = pair()
    srv = listen(p.b, backlog=1)
    clients = []
    for _ in range(3):
        c = p.a.socket(AF4, socket.SOCK_STREAM)
        c.setblocking(False)
        assert c.connect_ex(("10.0.0.2", 80)) == errno.EINPROGRESS
        clients.append(c)
        p.run(0.01)
    states = [ep_of(c).state for c in clients]
    assert states == [State.ESTABLISHED, State.ESTABLISHED, State.SYN_SENT]
    assert p.b.stats["tcp.listen_overflows"] == 1
    srv.accept()
    srv.accept()
    # the third SYN is retransmitted after the initial RTO and now finds room
    p.run(1.0)
    assert ep_of(clients[2]).state is State.ESTABLISHED
    third, addr = srv.accept()
    assert addr[1] == clients[2].getsockname()[1]
    clients[2].send(b"late")
    third.settimeout(1)
    assert third.recv(10) == b"late"


def test_accept_queue_full_at_final_ack_keeps_child_half_open() -> None:
    peer = RawPeer.create()
    srv = _listener(peer, backlog=0)
    listener = ep_of(srv).listener
    assert listener is not None
    synacks = {}
    for port in (5001, 5002):
        peer.send(1000, 0, SYN, options=wire.TCPOptions(mss=1460), sport=port)
        synacks[port] = peer.expect()
    assert len(listener.pending) == 2
    peer.send(1001, synacks[5001].seq + 1, ACK, sport=5001)
    peer.send(1001, synacks[5002].seq + 1, ACK, sport=5002)
    peer.nothing()
    assert len(listener.accept_queue) == 1 and len(listener.pending) == 1
    assert peer.stack.stats["tcp.listen_overflows"] == 1
    # the half-open child retransmits its SYN-ACK; its ACK is dropped again while full
    again = peer.expect(1.0)
    assert again.flags == SYN | ACK and again.dport == 5002
    peer.send(1001, synacks[5002].seq + 1, ACK, sport=5002)
    peer.nothing()
    assert peer.stack.stats["tcp.listen_overflows"] == 2
    _first, addr = srv.accept()
    assert addr[1] == 5001
    # room now: the next ACK (answering the next SYN-ACK) completes the handshake
    again = peer.expect(2.0)
    assert again.flags == SYN | ACK
    peer.send(1001, synacks[5002].seq + 1, ACK, sport=5002, payload=b"hi")
    ack = peer.expect()
    assert ack.flags == ACK and ack.ack == 1003  # no RST: the ACK is still acceptable
    second, addr = srv.accept()
    assert addr[1] == 5002
    second.settimeout(1)
    assert second.recv(10) == b"hi"


def test_listener_close_resets_unaccepted_connections() -> None:
    p = pair()
    srv = listen(p.b)
    cli = p.a.socket(AF4, socket.SOCK_STREAM)
    cli.settimeout(1)
    cli.connect(("10.0.0.2", 80))
    srv.close()
    p.run(0.01)
    assert ep_of(cli).state is State.CLOSED
    with pytest.raises(ConnectionResetError):
        cli.recv(10)


# --- SYN cookies ----------------------------------------------------------------------------


def test_rfc4987_syncookies_always_connection_works() -> None:
    p = pair(tcp_b={"syncookies": "always"})
    srv = listen(p.b)
    listener = ep_of(srv).listener
    assert listener is not None
    c = connect(p, listener=srv)
    assert p.b.stats["tcp.syncookies_sent"] == 1
    assert p.b.stats["tcp.syncookies_received"] == 1
    info = c.server.tcp_info()
    assert info.timestamps and info.sack and info.wscale
    assert info.snd_wscale == 7 and info.snd_mss == 1448
    data = bytes(range(256)) * 2000
    got = pump(p, [(c.client, c.server, data), (c.server, c.client, data)])
    assert got == [data, data]
    assert p.a.stats["tcp.paws_rejected"] == 0 and p.b.stats["tcp.paws_rejected"] == 0


def test_rfc4987_syncookie_keeps_no_state_until_ack() -> None:
    peer = RawPeer.create(tcp_a={"syncookies": "always"})
    srv = _listener(peer)
    listener = ep_of(srv).listener
    assert listener is not None
    peer.send(1000, 0, SYN, options=SYN_OPTS)
    synack = peer.expect()
    assert synack.flags == SYN | ACK and synack.ack == 1001
    assert not listener.pending and not tcp(peer.stack).connections
    # the options the SYN offered are answered
    assert synack.options.mss == 1460
    assert synack.options.wscale == 7 and synack.options.sack_permitted
    assert synack.options.timestamp is not None and synack.options.timestamp[1] == 5000


def test_rfc4987_syncookie_carries_peer_options_in_timestamp() -> None:
    """The peer's window scale (2, not ours) and SACK-permitted come back in TSecr."""
    peer = RawPeer.create(tcp_a={"syncookies": "always"})
    srv = _listener(peer)
    peer.send(1000, 0, SYN, options=SYN_OPTS)
    synack = peer.expect()
    tsval = synack.timestamp[0]
    conn = PeerConn(peer, None, 1001, synack.seq + 1, ts=True)
    conn.ts_recent = tsval
    conn.send(ACK, window=1000)
    peer.nothing()
    sock, _ = srv.accept()
    ep = ep_of(sock)
    assert ep.state is State.ESTABLISHED
    assert ep.sender.wscale == 2 and ep.sender.snd_wnd == 4000
    assert ep.sack_enabled and ep.ts_enabled
    assert ep.sender.mss == 1460 - 12
    # our timestamps continue from the cookie's: never older (the peer's PAWS, RFC 7323 5)
    sock.send(b"x")
    seg = conn.expect()
    assert seg.options.timestamp is not None
    assert not lt(seg.options.timestamp[0], tsval)


def test_rfc4987_syncookie_without_timestamps_drops_wscale_and_sack() -> None:
    peer = RawPeer.create(tcp_a={"syncookies": "always"})
    srv = _listener(peer)
    peer.send(1000, 0, SYN, options=wire.TCPOptions(mss=1000, wscale=2, sack_permitted=True))
    synack = peer.expect()
    assert synack.options.wscale is None and not synack.options.sack_permitted
    assert synack.options.mss == 536  # the largest table entry not above the peer's 1000
    peer.send(1001, synack.seq + 1, ACK)
    sock, _ = srv.accept()
    ep = ep_of(sock)
    assert not ep.sack_enabled and not ep.ts_enabled and ep.sender.wscale == 0
    assert ep.receiver.wscale == 0
    assert ep.sender.mss == 536


def test_rfc4987_syncookie_ack_carrying_data_is_accepted() -> None:
    peer = RawPeer.create(tcp_a={"syncookies": "always"})
    srv = _listener(peer)
    peer.send(1000, 0, SYN, options=wire.TCPOptions(mss=1460))
    synack = peer.expect()
    peer.send(1001, synack.seq + 1, ACK | 0x08, payload=b"GET / HTTP/1.0\r\n\r\n")
    ack = peer.expect(0.5)
    assert ack.flags == ACK and ack.ack == 1001 + 18
    sock, _ = srv.accept()
    sock.settimeout(1)
    assert sock.recv(100) == b"GET / HTTP/1.0\r\n\r\n"


def test_rfc4987_syncookies_when_syn_queue_overflows() -> None:
    peer = RawPeer.create(tcp_a={"syncookies": "auto", "max_syn_backlog": 2})
    srv = _listener(peer)
    listener = ep_of(srv).listener
    assert listener is not None
    synacks = {}
    for port in (5001, 5002, 5003):
        peer.send(1000, 0, SYN, options=wire.TCPOptions(mss=1460), sport=port)
        synacks[port] = peer.expect()
    assert len(listener.pending) == 2
    assert peer.stack.stats["tcp.syncookies_sent"] == 1
    peer.send(1001, synacks[5003].seq + 1, ACK, sport=5003)
    _sock, addr = srv.accept()
    assert addr[1] == 5003
    assert peer.stack.stats["tcp.syncookies_received"] == 1
    # the queued ones complete normally
    peer.send(1001, synacks[5001].seq + 1, ACK, sport=5001)
    assert srv.accept()[1][1] == 5001


def test_rfc4987_forged_or_stale_cookie_ack_reset() -> None:
    peer = RawPeer.create(tcp_a={"syncookies": "always"})
    srv = _listener(peer)
    peer.send(1000, 0, SYN, options=wire.TCPOptions(mss=1460))
    synack = peer.expect()
    peer.send(1001, synack.seq + 2, ACK)  # not the cookie
    rst = peer.expect()
    assert rst.flags == RST
    assert peer.stack.stats["tcp.syncookies_failed"] == 1
    peer.run(200)  # more than two 64-second periods later the real cookie is stale
    peer.take()
    peer.send(1001, synack.seq + 1, ACK)
    assert peer.expect().flags == RST
    assert peer.stack.stats["tcp.syncookies_failed"] == 2
    assert peer.stack.stats["tcp.syncookies_received"] == 0
    assert not listener_of(srv).accept_queue


def test_syncookie_ts_encoding_roundtrip() -> None:
    for wscale in (None, 0, 7, 14):
        for sack in (False, True):
            ts = SynCookies.encode_ts(123456789, wscale, sack)
            assert SynCookies.decode_ts(ts) == (wscale, sack)
            assert abs(ts - 123456789) < 64


def test_syn_to_listener_with_accept_queue_full_is_dropped() -> None:
    peer = RawPeer.create()
    srv = _listener(peer, backlog=0)
    peer.send(1000, 0, SYN, options=wire.TCPOptions(mss=1460), sport=5001)
    synack = peer.expect()
    peer.send(1001, synack.seq + 1, ACK, sport=5001)
    peer.send(2000, 0, SYN, options=wire.TCPOptions(mss=1460), sport=5002)
    peer.nothing()
    assert peer.stack.stats["tcp.listen_overflows"] == 1
    first, _ = srv.accept()
    peer.send(2000, 0, SYN, options=wire.TCPOptions(mss=1460), sport=5002)
    assert peer.expect().flags == SYN | ACK
    first.close()
