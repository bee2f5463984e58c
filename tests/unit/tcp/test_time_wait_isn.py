# SPDX-License-Identifier: MIT
"""A SYN that ends a TIME-WAIT (RFC 9293 3.10.7.4, RFC 6191) opens a new incarnation of
the connection whose ISN lies above the old connection's SND.NXT (RFC 1122 4.2.2.13),
so that no old duplicate fits its window: ustack keeps its clock ISN (RFC 6528) when
that is past SND.NXT + 65537 and takes SND.NXT + 65537 otherwise (as Linux)."""

from __future__ import annotations

import socket

from tests.unit.tcp.helpers import (
    ACK,
    AF4,
    B4,
    SYN,
    Conn,
    connect,
    listen,
    pair,
    pattern,
    pump,
    segments,
    tcp,
)
from ustack.testing.pair import StackPair
from ustack.transport.tcp.seqnum import MASK, gt
from ustack.transport.tcp.socket import StreamSocket
from ustack.transport.tcp.state import State


def _server_in_time_wait(p: StackPair, nbytes: int) -> tuple[Conn, int, int]:
    """The server sends ``nbytes`` and closes first: it sits in TIME-WAIT. Returns the
    connection, the client's port and the server's old SND.NXT (on the wire)."""
    srv = listen(p.b)
    c = connect(p, listener=srv)
    data = pattern(nbytes)
    assert pump(p, [(c.server, c.client, data)]) == [data]
    c.server.close()
    p.run(0.05)
    c.client.close()
    p.run(0.05)
    assert c.sep.state is State.TIME_WAIT
    return c, c.client.getsockname()[1], c.sep.sender.snd_nxt & MASK


def _assert_outran_isn_clock(p: StackPair, c: Conn, old_snd_nxt: int) -> None:
    """The old connection sent more than the ISN clock advanced since its start (with
    a second to spare): a clock ISN now would fall inside its sequence space."""
    old_iss = c.sep.sender.iss & MASK
    elapsed = p.clock.now() - c.sep.established_at
    assert (old_snd_nxt - old_iss) & MASK > 250_000 * (elapsed + 1)


def _reconnect(p: StackPair, port: int) -> StreamSocket:
    cli: StreamSocket = p.a.socket(AF4, socket.SOCK_STREAM)
    cli.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    cli.bind(("0.0.0.0", port))
    cli.settimeout(5)
    cli.connect((B4, 80))
    return cli


def test_rfc1122_4_2_2_13_new_incarnation_isn_above_old_snd_nxt() -> None:
    p = pair()
    # more than the ISN clock advances meanwhile (250,000 per second): without the rule
    # the new ISN would fall inside the old connection's sequence space
    c, port, old_snd_nxt = _server_in_time_wait(p, 600_000)
    _assert_outran_isn_clock(p, c, old_snd_nxt)
    p.link_b.written = []
    cli = _reconnect(p, port)
    synacks = [s for s in segments(p.link_b.written) if s.has(SYN | ACK)]
    assert len(synacks) == 1
    new_iss = synacks[0].seq
    assert gt(new_iss, old_snd_nxt)
    assert new_iss == (old_snd_nxt + 65535 + 2) & MASK
    assert p.b.stats["tcp.time_wait_recycled"] == 1
    # and the new connection works
    conn, _ = c.listener.accept()
    data = pattern(5000, seed=1)
    assert pump(p, [(cli, conn, data), (conn, cli, data)]) == [data, data]


def test_clock_isn_kept_when_already_above_old_snd_nxt() -> None:
    p = pair()
    c, port, old_snd_nxt = _server_in_time_wait(p, 1000)
    p.run(10)  # the ISN clock ran 2.5 million ahead; TIME-WAIT (60 s) still holds
    assert c.sep.state is State.TIME_WAIT
    p.link_b.written = []
    _reconnect(p, port)
    synack = next(s for s in segments(p.link_b.written) if s.has(SYN | ACK))
    assert gt(synack.seq, (old_snd_nxt + 65537) & MASK)
    assert synack.seq == tcp(p.b).isn(c.sep.local_addr, 80, c.sep.remote_addr, port)


def test_time_wait_syn_gets_a_child_not_a_cookie() -> None:
    """A cookie's ISN is a hash and cannot follow the old SND.NXT: as Linux, such a
    SYN is never answered with a cookie."""
    p = pair()
    c, port, old_snd_nxt = _server_in_time_wait(p, 600_000)
    _assert_outran_isn_clock(p, c, old_snd_nxt)
    tcp(p.b).config.syncookies = "always"  # (the old connection's ISN was not a cookie)
    p.link_b.written = []
    cookies_before = p.b.stats["tcp.syncookies_sent"]
    cli = _reconnect(p, port)
    synack = next(s for s in segments(p.link_b.written) if s.has(SYN | ACK))
    assert synack.seq == (old_snd_nxt + 65537) & MASK
    assert p.b.stats["tcp.syncookies_sent"] == cookies_before
    conn, _ = c.listener.accept()
    cli.sendall(b"ping")
    p.run(0.1)
    assert conn.recv(10) == b"ping"
