# SPDX-License-Identifier: MIT
"""SYN-cookie SYN-ACKs honour the listener's settings like ordinary ones:
FreeBSD's TCP_NOOPT (no option at all, as syncache_respond with SCF_NOOPT; the cookie
still keeps the peer's MSS) and ECN (RFC 3168 6.1.1: an ECN-setup SYN-ACK answers an
ECN-setup SYN; as Linux, the agreement is kept in the cookie's TSval, so without
timestamps a cookie connection does not use ECN)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.unit.tcp.helpers import ACK, SYN, PeerConn, RawPeer, decode_frame, ep_of
from ustack.transport.tcp.info import OPT_ECN, OPT_SACK, OPT_TIMESTAMPS, OPT_WSCALE
from ustack.transport.tcp.socket import TCP_NOOPT
from ustack.transport.tcp.syncookies import SynCookies
from ustack.wire import tcp as wire
from ustack.wire.tcp import CWR, ECE

FULL_SYN = wire.TCPOptions(mss=1460, wscale=2, sack_permitted=True, timestamp=(5000, 0))
ECT0 = 2


def _cookie_peer(**settings: Any) -> tuple[RawPeer, socket.socket]:
    peer = RawPeer.create(tcp_a={"syncookies": "always", **settings})
    srv = peer.listen()
    srv.settimeout(1)
    return peer, srv


def _complete(peer: RawPeer, srv: socket.socket, synack_seq: int, tsval: int | None,
              ) -> tuple[PeerConn, Any]:
    conn = PeerConn(peer, None, 1001, synack_seq + 1, ts=tsval is not None)
    if tsval is not None:
        conn.ts_recent = tsval
    conn.send(ACK)
    peer.nothing()
    sock, _ = srv.accept()
    conn.sock = sock
    assert peer.stack.stats["tcp.syncookies_received"] == 1
    return conn, sock


def test_tcp_noopt_cookie_synack_has_no_options() -> None:
    peer, srv = _cookie_peer()
    srv.setsockopt(socket.IPPROTO_TCP, TCP_NOOPT, 1)
    peer.send(1000, 0, SYN, options=FULL_SYN)
    synack = peer.expect()
    assert synack.flags == SYN | ACK and synack.ack == 1001
    assert synack.raw_options == b""  # not even the MSS (FreeBSD SCF_NOOPT)
    assert peer.stack.stats["tcp.syncookies_sent"] == 1
    conn, sock = _complete(peer, srv, synack.seq, None)
    info = sock.tcp_info()
    assert info.options == 0
    assert info.snd_wscale == 0 and info.rcv_wscale == 0
    assert info.snd_mss == 1460  # the peer's MSS, from the cookie
    sock.send(b"x" * 100)
    seg = conn.expect()
    assert seg.raw_options == b"" and seg.payload == b"x" * 100


def test_tcp_noopt_listener_without_cookies_agrees() -> None:
    """The same listener without cookies answers the same way (the reference)."""
    peer = RawPeer.create()
    srv = peer.listen()
    srv.setsockopt(socket.IPPROTO_TCP, TCP_NOOPT, 1)
    peer.send(1000, 0, SYN, options=FULL_SYN)
    synack = peer.expect()
    assert synack.raw_options == b""


def _frames_and_segments(peer: RawPeer) -> list[tuple[int, Any]]:
    """(IP ECN bits, segment) for what the stack sent (IPv4 frames)."""
    out = []
    for frame in peer.p.link_a.written or []:
        seg = decode_frame(frame)
        if seg is not None:
            out.append((frame[15] & 3, seg))
    peer.p.link_a.written = []
    return out


@pytest.mark.parametrize("setting", [1, 2], ids=["request", "accept"])
def test_rfc3168_6_1_1_cookie_synack_agrees_to_ecn(setting: int) -> None:
    peer, srv = _cookie_peer(ecn=setting)
    peer.send(1000, 0, SYN | ECE | CWR, options=FULL_SYN)
    peer.run()
    ((ip_ecn, synack),) = _frames_and_segments(peer)
    assert synack.flags == SYN | ACK | ECE and ip_ecn == 0  # not ECT (6.1.1)
    assert synack.options.timestamp is not None
    tsval = synack.options.timestamp[0]
    assert SynCookies.decode_ecn(tsval)
    _conn, sock = _complete(peer, srv, synack.seq, tsval)
    info = sock.tcp_info()
    assert info.options & OPT_ECN
    assert info.options & (OPT_TIMESTAMPS | OPT_SACK | OPT_WSCALE) == \
        OPT_TIMESTAMPS | OPT_SACK | OPT_WSCALE
    sock.send(b"d" * 100)
    peer.run()
    ((ip_ecn, seg),) = _frames_and_segments(peer)
    assert seg.payload == b"d" * 100 and ip_ecn == ECT0  # new data is ECN-capable


def test_cookie_without_timestamps_does_not_agree_to_ecn() -> None:
    peer, srv = _cookie_peer(ecn=2)
    peer.send(1000, 0, SYN | ECE | CWR, options=wire.TCPOptions(mss=1460))
    synack = peer.expect()
    assert synack.flags == SYN | ACK  # nowhere to keep the agreement: no ECE
    _conn, sock = _complete(peer, srv, synack.seq, None)
    assert not sock.tcp_info().options & OPT_ECN
    assert not ep_of(sock).ecn.ok


@pytest.mark.parametrize(("setting", "flags"), [(0, SYN | ECE | CWR), (2, SYN)],
                         ids=["ecn-off", "not-an-ecn-setup-syn"])
def test_cookie_synack_without_ece(setting: int, flags: int) -> None:
    peer, srv = _cookie_peer(ecn=setting)
    peer.send(1000, 0, flags, options=FULL_SYN)
    synack = peer.expect()
    assert synack.flags == SYN | ACK
    assert synack.options.timestamp is not None
    tsval = synack.options.timestamp[0]
    assert not SynCookies.decode_ecn(tsval)
    _conn, sock = _complete(peer, srv, synack.seq, tsval)
    assert not ep_of(sock).ecn.ok


def test_syncookie_ts_encoding_keeps_ecn() -> None:
    for wscale in (None, 0, 14):
        for sack in (False, True):
            for ecn in (False, True):
                ts = SynCookies.encode_ts(987654321, wscale, sack, ecn)
                assert SynCookies.decode_ts(ts) == (wscale, sack)
                assert SynCookies.decode_ecn(ts) is ecn
                assert 0 <= 987654321 - ts < 64  # never ahead of the clock
