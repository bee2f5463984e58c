# SPDX-License-Identifier: MIT
"""Path MTU updates only for errors the transport vouches for (RFC 8201 5.2, RFC 5927 4.1,
RFC 1191): a blind packet-too-big quoting nothing in flight changes no cache entry, and
reported MTUs below the protocol minimum are discarded."""

from __future__ import annotations

import socket
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from tests.unit.tcp.helpers import ep_of
from ustack.network.ipv4 import IPv4Protocol
from ustack.network.ipv6 import IPv6Protocol
from ustack.network.pmtu import PathMTUCache
from ustack.testing.pair import StackPair, make_pair
from ustack.transport.tcp.endpoint import TCPEndpoint
from ustack.transport.tcp.socket import StreamSocket
from ustack.wire.proto import EtherType

FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
A = {4: "10.0.0.1", 6: "fd00::1"}
B = {4: "10.0.0.2", 6: "fd00::2"}


def pmtu_of(pair: StackPair, version: int) -> PathMTUCache:
    proto = pair.a.network_protocols[EtherType.IPV4 if version == 4 else EtherType.IPV6]
    assert isinstance(proto, (IPv4Protocol, IPv6Protocol))
    return proto.pmtu


def too_big(pair: StackPair, version: int, mtu: int, quote: bytes, proto: int = 17) -> None:
    """A packet-too-big from a router about a packet a sent to b, quoting the transport
    header ``quote`` (of IP protocol ``proto``)."""
    ether = Ether(dst=pair.link_a.link_address.hex(":"), src="02:00:00:00:00:99")
    if version == 4:
        frame = (ether / IP(src="10.0.0.254", dst=A[4]) / ICMP(type=3, code=4, nexthopmtu=mtu)
                 / IP(src=A[4], dst=B[4], flags="DF", proto=proto)
                 / Raw(quote))
    else:
        frame = (ether / IPv6(src="fd00::fe", dst=A[6]) / ICMPv6PacketTooBig(mtu=mtu)
                 / IPv6(src=A[6], dst=B[6], nh=proto) / Raw(quote))
    pair.link_a.inject(bytes(frame))
    pair.run(0.01)


def tcp_quote(seq: int, sport: int) -> bytes:
    return bytes(TCP(sport=sport, dport=80, seq=seq & 0xFFFFFFFF, flags="A"))[:20]


def connected(pair: StackPair, version: int) -> StreamSocket:
    srv = pair.b.socket(FAMILY[version], socket.SOCK_STREAM)
    srv.bind((B[version], 80))
    srv.listen()
    cli: StreamSocket = pair.a.socket(FAMILY[version], socket.SOCK_STREAM)
    cli.settimeout(5)
    cli.connect((B[version], 80))
    srv.accept()
    return cli


def sending(version: int) -> tuple[StackPair, TCPEndpoint]:
    """A connection from a to b with 20000 bytes just written: data in flight."""
    pair = make_pair()
    cli = connected(pair, version)
    cli.send(b"x" * 20000)
    return pair, ep_of(cli)


@pytest.mark.parametrize("version", [4, 6])
def test_blind_packet_too_big_for_tcp_leaves_the_path_mtu_alone(version: int) -> None:
    pair, ep = sending(version)
    far_off = ep.sender.snd_una + 1_000_000  # RFC 5927 4.1: nothing in flight there
    too_big(pair, version, 1280 if version == 6 else 600,
            tcp_quote(far_off, ep.local_port), proto=6)
    assert pair.a.stats["tcp.icmp_out_of_window"] == 1
    assert pair.a.stats[f"icmp{version}.ptb_rejected"] == 1
    assert pmtu_of(pair, version).entry(packed(B[version])) is None
    assert pmtu_of(pair, version).get(packed(B[version]), 1500) == 1500


@pytest.mark.parametrize("version", [4, 6])
def test_packet_too_big_for_tcp_data_in_flight_lowers_the_path_mtu(version: int) -> None:
    pair, ep = sending(version)
    mtu = 1300 if version == 6 else 1000
    too_big(pair, version, mtu, tcp_quote(ep.sender.snd_una, ep.local_port), proto=6)
    assert pair.a.stats[f"icmp{version}.ptb_rejected"] == 0
    assert pmtu_of(pair, version).get(packed(B[version]), 1500) == mtu


def udp_quote(sport: int, dport: int) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + 1400, 0)


@pytest.mark.parametrize("version", [4, 6])
def test_packet_too_big_for_udp_needs_a_socket_on_the_quoted_port(version: int) -> None:
    pair = make_pair()
    mtu = 1300 if version == 6 else 1000
    too_big(pair, version, mtu, udp_quote(40000, 5000))  # no socket on port 40000
    assert pair.a.stats[f"icmp{version}.ptb_rejected"] == 1
    assert pmtu_of(pair, version).get(packed(B[version]), 1500) == 1500
    sock = pair.a.socket(FAMILY[version], socket.SOCK_DGRAM)
    sock.bind((A[version], 40000))  # unconnected, as Linux's __udp4_lib_err finds it
    too_big(pair, version, mtu, udp_quote(40000, 5000))
    assert pair.a.stats[f"icmp{version}.ptb_rejected"] == 1  # still one
    assert pmtu_of(pair, version).get(packed(B[version]), 1500) == mtu


@pytest.mark.parametrize("reported", [1, 67])
def test_rfc791_next_hop_mtu_below_68_is_discarded(reported: int) -> None:
    pair = make_pair()
    sock = pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((A[4], 40000))
    too_big(pair, 4, reported, udp_quote(40000, 5000))
    assert pair.a.stats["icmp4.ptb_below_minimum"] == 1
    assert pmtu_of(pair, 4).entry(packed(B[4])) is None


def test_rfc1191_5_zero_next_hop_mtu_uses_the_plateau_below_the_datagram() -> None:
    pair = make_pair()
    sock = pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((A[4], 40000))
    ether = Ether(dst=pair.link_a.link_address.hex(":"), src="02:00:00:00:00:99")
    # the quoted datagram was 4400 bytes long: the plateau below is 4352 (RFC 1191 7)
    frame = (ether / IP(src="10.0.0.254", dst=A[4]) / ICMP(type=3, code=4, nexthopmtu=0)
             / IP(src=A[4], dst=B[4], flags="DF", len=4400, proto=17)
             / Raw(udp_quote(40000, 5000)))
    pair.link_a.inject(bytes(frame))
    pair.run(0.01)
    assert pmtu_of(pair, 4).get(packed(B[4]), 9000) == 4352
    assert pair.a.stats["icmp4.ptb_below_minimum"] == 0


def test_rfc8201_4_next_hop_mtu_below_1280_is_discarded() -> None:
    pair = make_pair()
    sock = pair.a.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind((A[6], 40000))
    too_big(pair, 6, 1279, udp_quote(40000, 5000))
    assert pair.a.stats["icmp6.ptb_below_minimum"] == 1
    assert pmtu_of(pair, 6).entry(packed(B[6])) is None
    too_big(pair, 6, 1280, udp_quote(40000, 5000))
    assert pmtu_of(pair, 6).get(packed(B[6]), 1500) == 1280


def packed(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)

