# SPDX-License-Identifier: MIT
"""Connection establishment (RFC 9293 3.5): active and passive OPEN over IPv4 and IPv6,
option negotiation (RFC 9293 3.7.1 MSS, RFC 7323 window scaling and timestamps,
RFC 2018 SACK-permitted), SYN retransmission (RFC 6298 5.7), refused and timed-out
connects, non-blocking connect, and simultaneous open (RFC 9293 figure 8)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

import pytest

from tests.unit.tcp.helpers import (
    ACK,
    ADDRS,
    AF4,
    AF6,
    RST,
    SYN,
    RawPeer,
    Seg,
    connect,
    ep_of,
    pair,
    peer_connect_from_stack,
    peer_listen_accept,
    pump,
    segments,
    syn_sent,
)
from ustack.transport.tcp.info import OPT_SACK, OPT_TIMESTAMPS, OPT_WSCALE
from ustack.transport.tcp.state import State
from ustack.wire import tcp as wire

FAMILIES = pytest.mark.parametrize("family", [AF4, AF6], ids=["ipv4", "ipv6"])


@FAMILIES
def test_rfc9293_3_5_three_way_handshake(family: int) -> None:
    p = pair()
    p.link_a.written, p.link_b.written = [], []
    c = connect(p, family)
    a_sent = segments(p.link_a.written)
    b_sent = segments(p.link_b.written)
    syn, ack = a_sent[0], a_sent[1]
    synack = b_sent[0]
    assert syn.flags == SYN and synack.flags == SYN | ACK and ack.flags == ACK
    assert synack.ack == (syn.seq + 1) & 0xFFFFFFFF
    assert ack.seq == (syn.seq + 1) & 0xFFFFFFFF and ack.ack == (synack.seq + 1) & 0xFFFFFFFF
    assert not syn.payload and not synack.payload and not ack.payload
    a_addr, b_addr = ADDRS[family]
    assert syn.src == a_addr and syn.dst == b_addr and syn.dport == 80
    assert c.cep.state is State.ESTABLISHED and c.sep.state is State.ESTABLISHED
    assert c.client.getpeername()[:2] == (b_addr, 80)
    assert c.server.getpeername()[:2] == (a_addr, syn.sport)
    assert c.server.getsockname()[:2] == (b_addr, 80)
    # data both ways
    c.client.sendall(b"ping")
    assert c.server.recv(100) == b"ping"
    c.server.sendall(b"pong")
    assert c.client.recv(100) == b"pong"
    assert p.a.stats["tcp.active_opens"] == 1 and p.b.stats["tcp.passive_opens"] == 1


@FAMILIES
def test_rfc9293_3_7_1_mss_is_route_mtu_minus_headers(family: int) -> None:
    p = pair(mtu=1280)
    p.link_a.written, p.link_b.written = [], []
    c = connect(p, family)
    syn = segments(p.link_a.written)[0]
    synack = segments(p.link_b.written)[0]
    expected = 1280 - (20 if family == AF4 else 40) - 20
    assert syn.options.mss == expected and synack.options.mss == expected
    info = c.client.tcp_info()
    assert info.advmss == expected
    assert info.snd_mss == expected - 12  # the timestamp option rides on every segment
    # full-sized segments respect the MTU
    p.link_a.written = []
    pump(p, [(c.client, c.server, bytes(20000))])
    data = [s for s in segments(p.link_a.written) if s.payload]
    assert max(len(s.payload) for s in data) == expected - 12


def test_tcp_maxseg_limits_advertised_mss() -> None:
    p = pair()
    p.link_a.written = []
    c = connect(p, client_setup=lambda s: s.setsockopt(socket.IPPROTO_TCP,
                                                         socket.TCP_MAXSEG, 1000))
    syn = segments(p.link_a.written)[0]
    assert syn.options.mss == 1000
    assert c.server.tcp_info().snd_mss == 1000 - 12


def test_rfc9293_3_7_1_send_mss_clamped_to_peer_mss() -> None:
    peer = RawPeer.create()
    conn, syn = peer_connect_from_stack(peer, wire.TCPOptions(mss=1000))
    assert syn.options.mss == 1460
    ack = conn.expect()
    assert ack.flags == ACK
    assert conn.ep.sender.mss == 1000
    conn.sock.send(bytes(5000))
    data = conn.take()
    assert [len(s.payload) for s in data] == [1000] * 5


def test_rfc9293_3_7_1_default_mss_without_option() -> None:
    """A SYN without an MSS option: the peer takes 536 (RFC 9293 3.7.1, RFC 6691)."""
    peer = RawPeer.create()
    conn, _synack = peer_listen_accept(peer, syn_options=b"")
    assert conn.ep.sender.mss == 536
    conn.sock.send(bytes(2000))
    assert [len(s.payload) for s in conn.take()] == [536, 536, 536, 392]


def test_all_options_negotiated() -> None:
    p = pair()
    p.link_a.written, p.link_b.written = [], []
    c = connect(p)
    syn = segments(p.link_a.written)[0]
    synack = segments(p.link_b.written)[0]
    for s in (syn, synack):
        assert s.options.mss == 1460
        assert s.options.sack_permitted
        assert s.options.timestamp is not None
        assert s.options.wscale == 7  # covers the 6 MiB maximum receive buffer
    assert synack.timestamp[1] == syn.timestamp[0]
    assert syn.timestamp[1] == 0
    for sock in (c.client, c.server):
        info = sock.tcp_info()
        assert info.options == OPT_TIMESTAMPS | OPT_SACK | OPT_WSCALE
        assert info.snd_wscale == 7 and info.rcv_wscale == 7
        assert info.recovery == "rfc6675"
    # RFC 7323 2.2: the window in SYNs is not scaled; later ones are
    assert syn.window == 65535 and synack.window == 65535
    ack = segments(p.link_a.written)[1]
    assert ack.window == c.cep.receiver.rcvbuf >> 7
    assert ack.options.timestamp is not None


OPTION_CASES = [
    ("window_scaling", "a"), ("window_scaling", "b"),
    ("timestamps", "a"), ("timestamps", "b"),
    ("sack", "a"), ("sack", "b"),
]


@pytest.mark.parametrize(("option", "side"), OPTION_CASES,
                         ids=[f"no-{o}-on-{s}" for o, s in OPTION_CASES])
def test_rfc7323_rfc2018_option_off_on_one_side(option: str, side: str) -> None:
    """An option is in effect only when both SYNs carry it; a SYN-ACK never offers an
    option the SYN lacked (RFC 7323 1.3, 2.2, 3.2; RFC 2018 2)."""
    settings = {option: False}
    p = pair(tcp_a=settings if side == "a" else None, tcp_b=settings if side == "b" else None)
    p.link_a.written, p.link_b.written = [], []
    c = connect(p)
    syn = segments(p.link_a.written)[0]
    synack = segments(p.link_b.written)[0]
    offers: dict[str, Callable[[Seg], bool]] = {
        "window_scaling": lambda s: s.options.wscale is not None,
        "timestamps": lambda s: s.options.timestamp is not None,
        "sack": lambda s: s.options.sack_permitted,
    }
    present = offers[option]
    assert present(syn) == (side == "b")
    assert not present(synack)
    for sock in (c.client, c.server):
        info = sock.tcp_info()
        if option == "window_scaling":
            assert not info.wscale and info.snd_wscale == 0 and info.rcv_wscale == 0
            assert info.timestamps and info.sack
        elif option == "timestamps":
            assert not info.timestamps and info.wscale and info.sack
            assert info.snd_mss == 1460
        else:
            assert not info.sack and info.timestamps and info.wscale
            assert info.recovery == "newreno"
    # nothing scaled when scaling is off: the window field carries the 16-bit window
    p.link_a.written = []
    got = pump(p, [(c.client, c.server, bytes(100000)), (c.server, c.client, bytes(100000))])
    assert got == [bytes(100000)] * 2
    later = segments(p.link_a.written)
    if option == "timestamps":
        assert all(s.options.timestamp is None for s in later)
    if option == "window_scaling":
        assert all(s.window <= 65535 for s in later)
        assert c.sep.sender.snd_wnd <= 65535


def test_rfc7323_2_3_peer_window_scale_applied() -> None:
    """The peer's shift (here 2) scales the windows it sends; ours is independent."""
    peer = RawPeer.create()
    conn, syn = peer_connect_from_stack(peer, wire.TCPOptions(mss=1460, wscale=2))
    assert syn.options.wscale == 7
    conn.expect()
    conn.send(ACK, window=1000)
    conn.take()
    assert conn.ep.sender.snd_wnd == 4000
    assert conn.ep.sender.wscale == 2


def test_rfc7323_2_3_window_scale_capped_at_14() -> None:
    peer = RawPeer.create()
    conn, _ = peer_connect_from_stack(peer, wire.TCPOptions(mss=1460, wscale=15))
    conn.expect()
    assert conn.ep.sender.wscale == 14


# --- SYN retransmission -------------------------------------------------------------------------


def test_rfc6298_5_7_syn_retransmitted_with_backoff_then_etimedout() -> None:
    peer = RawPeer.create()
    cli = peer.stack.socket(AF4, socket.SOCK_STREAM)
    cli.setblocking(False)
    start = peer.p.clock.now()
    assert cli.connect_ex((ADDRS[AF4][1], 5000)) == errno.EINPROGRESS
    first = peer.expect()
    assert first.flags == SYN
    times = []
    for _ in range(6):
        assert peer.wait(200)
        times.append(round(peer.p.clock.now() - start, 3))
        again = peer.expect()
        assert again.flags == SYN and again.seq == first.seq
        assert again.options.mss == first.options.mss
    assert times == [1.0, 3.0, 7.0, 15.0, 31.0, 63.0]
    assert ep_of(cli).state is State.SYN_SENT
    peer.run(64 - 0.001)
    assert ep_of(cli).state is State.SYN_SENT
    peer.run(0.002)
    assert ep_of(cli).state is State.CLOSED
    assert cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ETIMEDOUT
    assert peer.stack.stats["tcp.syn_retransmits"] == 6
    assert peer.stack.stats["tcp.attempt_fails"] == 1
    peer.nothing(100)


def test_blocking_connect_reports_etimedout() -> None:
    peer = RawPeer.create(tcp_a={"syn_retries": 2})
    cli = peer.stack.socket(AF4, socket.SOCK_STREAM)
    start = peer.p.clock.now()
    with pytest.raises(TimeoutError) as info:
        cli.connect((ADDRS[AF4][1], 5000))
    assert info.value.errno == errno.ETIMEDOUT
    assert peer.p.clock.now() - start == pytest.approx(7.0)
    assert len(peer.take()) == 3


def test_connect_timeout_from_settimeout() -> None:
    peer = RawPeer.create()
    cli = peer.stack.socket(AF4, socket.SOCK_STREAM)
    cli.settimeout(2.5)
    start = peer.p.clock.now()
    with pytest.raises(TimeoutError):
        cli.connect((ADDRS[AF4][1], 5000))
    assert peer.p.clock.now() - start == pytest.approx(2.5)
    assert ep_of(cli).state is State.CLOSED
    assert [s.flags for s in peer.take()] == [SYN, SYN]
    peer.nothing(10)  # no more retransmissions for an abandoned connect


@FAMILIES
def test_rfc9293_3_10_7_1_connect_to_closed_port_refused_at_once(family: int) -> None:
    p = pair()
    cli = p.a.socket(family, socket.SOCK_STREAM)
    start = p.clock.now()
    p.link_b.written = []
    with pytest.raises(ConnectionRefusedError) as info:
        cli.connect((ADDRS[family][1], 81))
    assert info.value.errno == errno.ECONNREFUSED
    assert p.clock.now() - start < 0.01
    rst = segments(p.link_b.written)[0]
    assert rst.flags == RST | ACK and rst.seq == 0
    assert p.a.stats["tcp.connection_refused"] == 1
    assert p.b.stats["tcp.no_endpoint"] == 1
    # the port is free again
    assert ep_of(cli).state is State.CLOSED and ep_of(cli).binding is None


def test_nonblocking_connect_einprogress_then_writable() -> None:
    p = pair()
    srv = p.b.socket(AF4, socket.SOCK_STREAM)
    srv.bind(("0.0.0.0", 80))
    srv.listen()
    cli = p.a.socket(AF4, socket.SOCK_STREAM)
    cli.setblocking(False)
    with pytest.raises(BlockingIOError) as info:
        cli.connect(("10.0.0.2", 80))
    assert info.value.errno == errno.EINPROGRESS
    from ustack.waiter import WRITABLE

    assert not cli.readiness() & WRITABLE
    with pytest.raises(BlockingIOError) as again:
        cli.connect(("10.0.0.2", 80))
    assert again.value.errno == errno.EALREADY
    with pytest.raises(BlockingIOError):
        cli.send(b"early")
    p.clock.run_until(lambda: bool(cli.readiness() & WRITABLE), 1)
    assert cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    assert cli.send(b"hello") == 5
    srv.settimeout(1)
    conn, _ = srv.accept()
    conn.settimeout(1)
    assert conn.recv(10) == b"hello"
    with pytest.raises(OSError) as connected:
        cli.connect(("10.0.0.2", 80))
    assert connected.value.errno == errno.EISCONN


def test_nonblocking_connect_refused_reported_by_so_error() -> None:
    p = pair()
    cli = p.a.socket(AF4, socket.SOCK_STREAM)
    cli.setblocking(False)
    assert cli.connect_ex(("10.0.0.2", 81)) == errno.EINPROGRESS
    p.run(0.01)
    assert cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    assert cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


# --- simultaneous open --------------------------------------------------------------------------


def test_rfc9293_figure_8_simultaneous_open_scripted() -> None:
    peer = RawPeer.create()
    cli = peer.stack.socket(AF4, socket.SOCK_STREAM)
    cli.bind(("0.0.0.0", 1111))
    cli.setblocking(False)
    peer.local_port = 1111
    assert cli.connect_ex(("10.0.0.2", 5000)) == errno.EINPROGRESS
    syn = peer.expect()
    assert syn.flags == SYN
    # the peer's SYN crosses ours
    peer.send(300, 0, SYN, options=wire.TCPOptions(mss=1460))
    synack = peer.expect()
    assert synack.flags == SYN | ACK and synack.seq == syn.seq and synack.ack == 301
    assert ep_of(cli).state is State.SYN_RECEIVED
    # the peer's SYN-ACK (it got our SYN) completes the handshake
    peer.send(300, syn.seq + 1, SYN | ACK, options=wire.TCPOptions(mss=1460))
    out = peer.take()
    assert ep_of(cli).state is State.ESTABLISHED
    assert all(not s.flags & SYN for s in out)  # no SYN-ACK ping-pong
    assert cli.send(b"data") == 4
    seg = peer.expect()
    assert seg.payload == b"data" and seg.seq == (syn.seq + 1) & 0xFFFFFFFF and seg.ack == 301
    peer.send(301, syn.seq + 5, ACK, payload=b"back")
    peer.take()
    cli.settimeout(1)
    assert cli.recv(10) == b"back"


@FAMILIES
def test_rfc9293_figure_8_simultaneous_open_two_stacks(family: int) -> None:
    p = pair()
    a_addr, b_addr = ADDRS[family]
    x = p.a.socket(family, socket.SOCK_STREAM)
    y = p.b.socket(family, socket.SOCK_STREAM)
    x.bind((a_addr, 1111))
    y.bind((b_addr, 2222))
    x.setblocking(False)
    y.setblocking(False)
    p.link_a.written = []
    assert x.connect_ex((b_addr, 2222)) == errno.EINPROGRESS
    assert y.connect_ex((a_addr, 1111)) == errno.EINPROGRESS
    p.run(0.05)
    assert ep_of(x).state is State.ESTABLISHED and ep_of(y).state is State.ESTABLISHED
    assert len(segments(p.link_a.written)) < 6
    assert p.a.stats["tcp.rto"] == 0 and p.a.stats["tcp.syn_retransmits"] == 0
    assert pump(p, [(x, y, b"x" * 5000), (y, x, b"y" * 7000)]) == [b"x" * 5000, b"y" * 7000]


# --- the passive side -----------------------------------------------------------------------------


def test_rfc9293_3_10_7_4_retransmitted_syn_in_syn_received_resends_synack() -> None:
    peer = RawPeer.create()
    _srv = peer.listen()  # kept alive for the test
    peer.send(1000, 0, SYN, options=wire.TCPOptions(mss=1460))
    first = peer.expect()
    peer.send(1000, 0, SYN, options=wire.TCPOptions(mss=1460))
    again = peer.expect()
    assert again.flags == SYN | ACK and again.seq == first.seq and again.ack == 1001
    assert peer.stack.stats["tcp.challenge_acks"] == 0
    assert peer.stack.stats["tcp.passive_opens"] == 1


def test_synack_retransmitted_then_half_open_child_dropped() -> None:
    peer = RawPeer.create(tcp_a={"synack_retries": 2})
    srv = peer.listen()
    listener = ep_of(srv).listener
    assert listener is not None
    start = peer.p.clock.now()
    peer.send(1000, 0, SYN, options=wire.TCPOptions(mss=1460))
    first = peer.expect()
    times = []
    for _ in range(2):
        peer.wait(100)
        times.append(round(peer.p.clock.now() - start, 3))
        s = peer.expect()
        assert s.flags == SYN | ACK and s.seq == first.seq
    assert times == [1.0, 3.0]
    assert len(listener.pending) == 1
    peer.run(4.01)
    assert not listener.pending
    # a late ACK now finds no connection: RST
    peer.send(1001, first.seq + 1, ACK)
    rst = peer.expect()
    assert rst.flags == RST and rst.seq == (first.seq + 1) & 0xFFFFFFFF


def test_rfc9293_3_10_7_2_listener_answers_ack_with_rst() -> None:
    peer = RawPeer.create(tcp_a={"syncookies": "never"})
    _srv = peer.listen()  # kept alive for the test
    peer.send(1000, 777, ACK)
    rst = peer.expect()
    assert rst.flags == RST and rst.seq == 777
    peer.send(1000, 0, RST)
    peer.nothing()
    peer.send(1000, 0, 0)  # no flags at all: dropped silently
    peer.nothing()


def test_rfc9293_3_10_7_3_syn_sent_unacceptable_ack_draws_rst() -> None:
    peer = RawPeer.create()
    cli, syn = syn_sent(peer)
    peer.send(9000, syn.seq + 5, SYN | ACK, options=wire.TCPOptions(mss=1460))
    rst = peer.expect()
    assert rst.flags == RST and rst.seq == (syn.seq + 5) & 0xFFFFFFFF
    assert ep_of(cli).state is State.SYN_SENT
    # the right SYN-ACK still completes the connection
    peer.send(9000, syn.seq + 1, SYN | ACK, options=wire.TCPOptions(mss=1460))
    ack = peer.expect()
    assert ack.flags == ACK and ack.ack == 9001
    assert ep_of(cli).state is State.ESTABLISHED


def test_synack_with_data_is_delivered() -> None:
    peer = RawPeer.create()
    cli, syn = syn_sent(peer)
    peer.send(9000, syn.seq + 1, SYN | ACK, options=wire.TCPOptions(mss=1460),
              payload=b"early")
    ack = peer.expect()
    assert ack.ack == 9006
    assert cli.recv(10) == b"early"
