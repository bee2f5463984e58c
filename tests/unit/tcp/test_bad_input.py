# SPDX-License-Identifier: MIT
"""Hostile and broken input is dropped and counted, never raised: bad checksums, bad
data offsets, truncated headers, options that overrun the header, SYN+FIN and SYN+RST,
zero ports, out-of-window data and RSTs (RFC 9293 3.10.7, RFC 5961)."""

from __future__ import annotations

import socket

import pytest

from tests.unit.tcp.helpers import (
    ACK,
    AF4,
    AF6,
    FIN,
    PSH,
    RST,
    SYN,
    PeerConn,
    RawPeer,
    build_segment,
    established_peer,
    listener_of,
)
from ustack.wire import tcp as wire

FAMILIES = pytest.mark.parametrize("family", [AF4, AF6], ids=["ipv4", "ipv6"])


def _raw(conn: PeerConn, flags: int = ACK | PSH, payload: bytes = b"evil",
         data_offset: int | None = None, bad_checksum: bool = False) -> bytes:
    peer = conn.peer
    return build_segment(peer.addr, peer.stack_addr, peer.port, peer.local_port, conn.snd_nxt,
                         conn.rcv_nxt, flags, 65535, b"", payload, data_offset=data_offset,
                         bad_checksum=bad_checksum)


def _assert_dropped(conn: PeerConn, counter: str) -> None:
    conn.peer.nothing(0.5)  # no ACK, no RST: as if never received
    assert conn.ep.receiver.buffered == 0
    assert conn.peer.stack.stats[counter] == 1, conn.peer.stack.stats.snapshot()
    conn.send(ACK, payload=b"good")  # the connection is unharmed
    assert conn.expect(0.1).ack == conn.snd_nxt & 0xFFFFFFFF
    assert conn.sock.recv(10) == b"good"


@FAMILIES
def test_rfc9293_3_1_bad_checksum_dropped(family: int) -> None:
    conn = established_peer(family)
    conn.peer.inject_l4(_raw(conn, bad_checksum=True))
    _assert_dropped(conn, "tcp.drop.bad_checksum")


def test_bad_checksum_to_closed_port_draws_no_rst() -> None:
    peer = RawPeer.create()
    peer.send(1, 0, SYN, bad_checksum=True)
    peer.nothing()
    assert peer.stack.stats["tcp.drop.bad_checksum"] == 1
    assert peer.stack.stats["tcp.no_endpoint"] == 0


@pytest.mark.parametrize("offset", [0, 4, 15], ids=["zero", "below-5", "past-the-end"])
def test_rfc9293_3_1_bad_data_offset_dropped(offset: int) -> None:
    conn = established_peer()
    conn.peer.inject_l4(_raw(conn, payload=b"", data_offset=offset))
    _assert_dropped(conn, "tcp.drop.bad_header_length")


def test_truncated_header_dropped() -> None:
    conn = established_peer()
    seg = _raw(conn, payload=b"")[:19]
    conn.peer.inject_l4(seg)
    _assert_dropped(conn, "tcp.drop.truncated")


@pytest.mark.parametrize("options", [
    b"\x08\x0a\x00\x00",  # a timestamp option running past the header
    b"\x02\x00\x00\x00",  # length 0
    b"\x05\x01\x01\x01",  # length 1
    b"\x01\x01\x01\x05",  # a kind with no room for its length
], ids=["overrun", "len0", "len1", "no-length"])
def test_rfc9293_3_1_options_that_overrun_dropped(options: bytes) -> None:
    conn = established_peer()
    seg = build_segment(conn.peer.addr, conn.peer.stack_addr, conn.peer.port,
                        conn.peer.local_port, conn.snd_nxt, conn.rcv_nxt, ACK, 65535, options,
                        b"evil")
    conn.peer.inject_l4(seg)
    _assert_dropped(conn, "tcp.drop.bad_option")


def test_bad_options_to_listener_dropped() -> None:
    peer = RawPeer.create()
    srv = peer.listen()
    peer.send(1000, 0, SYN, options=b"\x01\x01\x02\x04")  # an MSS option cut short
    peer.send(1000, 0, SYN, options=b"\x02\x04\x05\xb4\x08\x0a\x00\x00")
    peer.nothing()
    assert peer.stack.stats["tcp.drop.bad_option"] == 2
    assert not listener_of(srv).pending


def test_unknown_and_misfit_options_are_skipped() -> None:
    """RFC 9293 3.1: unknown options are skipped by their length; a known option with a
    wrong length is ignored (as Linux and FreeBSD do), the segment is not."""
    conn = established_peer()
    opts = b"\xfd\x06abcd" + b"\x08\x06\x00\x00\x00\x00" + b"\x01\x00\x00\x00"
    seg = build_segment(conn.peer.addr, conn.peer.stack_addr, conn.peer.port,
                        conn.peer.local_port, conn.snd_nxt, conn.rcv_nxt, ACK, 65535, opts,
                        b"fine")
    conn.peer.inject_l4(seg)
    conn.snd_nxt += 4
    assert conn.expect(0.1).ack == conn.snd_nxt & 0xFFFFFFFF
    assert conn.sock.recv(10) == b"fine"


@pytest.mark.parametrize("flags", [SYN | FIN, SYN | RST, SYN | FIN | RST | ACK],
                         ids=["syn-fin", "syn-rst", "christmas"])
def test_rfc9293_syn_with_fin_or_rst_dropped(flags: int) -> None:
    conn = established_peer()
    conn.peer.inject_l4(_raw(conn, flags=flags, payload=b""))
    conn.peer.nothing()
    assert conn.ep.state.name == "ESTABLISHED"
    assert conn.peer.stack.stats["tcp.drop.bad_segment"] == 1
    # to a listener and to a closed port as well: no SYN-ACK, no RST
    peer = conn.peer
    _srv = peer.listen(8080)  # kept alive: closing it would change the case
    peer.send(1, 0, flags, dport=8080)
    peer.send(1, 0, flags, dport=9)
    peer.nothing()
    assert peer.stack.stats["tcp.drop.bad_segment"] == 3


def test_zero_ports_dropped() -> None:
    conn = established_peer()
    peer = conn.peer
    peer.send(1, 0, SYN, sport=0)
    peer.send(1, 0, SYN, dport=0)
    peer.nothing()
    assert peer.stack.stats["tcp.drop.bad_segment"] == 2


def test_rfc9293_3_10_7_4_out_of_window_data_dropped_and_acked() -> None:
    conn = established_peer()
    for seq in (conn.snd_nxt + 200000, conn.snd_nxt - 5000, conn.snd_nxt + (1 << 31)):
        conn.send(ACK, payload=b"outside", seq=seq)
        ack = conn.expect()  # RFC 9293: an unacceptable segment draws an ACK
        assert ack.flags == ACK and ack.ack == conn.snd_nxt & 0xFFFFFFFF
    assert conn.peer.stack.stats["tcp.drop.out_of_window"] == 3
    assert conn.ep.receiver.buffered == 0
    assert conn.ep.receiver.ooo_bytes == 0


def test_rfc7323_5_paws_drops_old_timestamps() -> None:
    conn = established_peer(ts=True)
    conn.send(ACK, payload=b"new")
    conn.take()
    conn.send(ACK, payload=b"old", options=wire.TCPOptions(timestamp=(5, 0)))
    ack = conn.expect()
    assert ack.ack == conn.snd_nxt - 3 & 0xFFFFFFFF
    assert conn.peer.stack.stats["tcp.paws_rejected"] == 1
    assert conn.sock.recv(10) == b"new"
    # a RST is not subject to PAWS (RFC 7323 5.3 R1), but to RFC 5961 as usual
    conn.send(RST, seq=conn.snd_nxt - 3, options=wire.TCPOptions(timestamp=(5, 0)))
    assert conn.ep.state.name == "CLOSED"


def test_fin_beyond_window_not_taken() -> None:
    conn = established_peer(tcp_a={"rcvbuf": 4096, "moderate_rcvbuf": False})
    conn.send(ACK | FIN, payload=b"z" * 5000)
    conn.take()
    assert conn.ep.state.name == "ESTABLISHED"  # the FIN lay outside the window
    assert conn.sock.recv(10000) == b"z" * 4096


def test_data_on_syn_to_listener_not_delivered_twice() -> None:
    peer = RawPeer.create()
    srv = peer.stack.socket(AF4, socket.SOCK_STREAM)
    srv.settimeout(1)
    srv.bind(("0.0.0.0", 80))
    srv.listen()
    peer.send(1000, 0, SYN, options=wire.TCPOptions(mss=1460), payload=b"syn-data")
    synack = peer.expect()
    assert synack.ack == 1001  # SYN data is not taken without TFO
    peer.send(1001, synack.seq + 1, ACK, payload=b"real")
    sock, _ = srv.accept()
    sock.settimeout(1)
    assert sock.recv(100) == b"real"
