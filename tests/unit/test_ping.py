# SPDX-License-Identifier: MIT
"""ICMP echo both ways over IPv4 (RFC 792) and IPv6 (RFC 4443 4), through ping sockets."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

import pytest
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

from tests.unit.stackframes import ICMP, IP, a_to_b, frames, inject, record
from ustack.socket import DatagramSocket
from ustack.stack import Stack
from ustack.testing.pair import StackPair
from ustack.wire import checksum

FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
PROTO = {4: socket.IPPROTO_ICMP, 6: socket.IPPROTO_ICMPV6}
ADDR = {(4, "a"): "10.0.0.1", (4, "b"): "10.0.0.2", (6, "a"): "fd00::1", (6, "b"): "fd00::2"}


def ping_socket(stack: Stack, version: int) -> DatagramSocket:
    sock = stack.socket(FAMILY[version], socket.SOCK_DGRAM, PROTO[version])
    assert isinstance(sock, DatagramSocket)
    sock.settimeout(2.0)
    return sock


def echo_request(version: int, seq: int, payload: bytes) -> bytes:
    kind = 8 if version == 4 else 128
    return struct.pack("!BBHHH", kind, 0, 0, 0, seq) + payload


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("direction", ["ab", "ba"])
def test_echo_reply_carries_the_same_payload(pair: StackPair, version: int,
                                             direction: str) -> None:
    src, dst = (pair.a, "b") if direction == "ab" else (pair.b, "a")
    sock = ping_socket(src, version)
    payload = bytes(range(256)) * 2
    sock.sendto(echo_request(version, 7, payload), (ADDR[version, dst], 0))
    reply, source = sock.recvfrom(2000)
    assert source[0] == ADDR[version, dst]
    assert reply[0] == (0 if version == 4 else 129) and reply[1] == 0
    ident = sock.getsockname()[1]
    assert struct.unpack("!HH", reply[4:8]) == (ident, 7)  # identifier is the socket's port
    assert reply[8:] == payload


def test_rfc792_echo_frames_ipv4(pair: StackPair) -> None:
    sock = ping_socket(pair.a, 4)
    record(pair)
    sock.sendto(echo_request(4, 1, b"abcdefgh" * 4), ("10.0.0.2", 0))
    sock.recvfrom(200)
    (request,) = frames(pair.link_a, ICMP)
    (reply,) = frames(pair.link_b, ICMP)
    assert (request[ICMP].type, reply[ICMP].type) == (8, 0)
    assert (request[IP].src, request[IP].dst) == ("10.0.0.1", "10.0.0.2")
    assert (reply[IP].src, reply[IP].dst) == ("10.0.0.2", "10.0.0.1")
    assert reply[ICMP].id == request[ICMP].id == sock.getsockname()[1]
    assert reply[ICMP].seq == request[ICMP].seq == 1
    assert bytes(reply[ICMP].payload) == bytes(request[ICMP].payload) == b"abcdefgh" * 4
    for frame in (request, reply):
        assert checksum.checksum(bytes(frame[ICMP])) == 0  # RFC 792: valid checksum


def test_rfc4443_echo_frames_ipv6(pair: StackPair) -> None:
    sock = ping_socket(pair.a, 6)
    record(pair)
    sock.sendto(echo_request(6, 2, b"ipv6 ping"), ("fd00::2", 0))
    sock.recvfrom(200)
    (request,) = frames(pair.link_a, ICMPv6EchoRequest)
    (reply,) = frames(pair.link_b, ICMPv6EchoReply)
    assert (request[IPv6].src, request[IPv6].dst) == ("fd00::1", "fd00::2")
    assert (reply[IPv6].src, reply[IPv6].dst) == ("fd00::2", "fd00::1")
    assert reply[ICMPv6EchoReply].id == request[ICMPv6EchoRequest].id
    assert reply[ICMPv6EchoReply].seq == 2
    assert reply[ICMPv6EchoReply].data == request[ICMPv6EchoRequest].data == b"ipv6 ping"
    for frame, layer in ((request, ICMPv6EchoRequest), (reply, ICMPv6EchoReply)):
        sent = frame[layer].cksum
        frame[layer].cksum = None
        assert IPv6(bytes(frame[IPv6]))[layer].cksum == sent  # pseudo-header checksum


@pytest.mark.parametrize("version", [4, 6])
def test_large_echo_is_fragmented_and_reassembled_both_ways(pair: StackPair,
                                                             version: int) -> None:
    sock = ping_socket(pair.a, version)
    payload = bytes(i % 251 for i in range(4000))
    record(pair)
    sock.sendto(echo_request(version, 3, payload), (ADDR[version, "b"], 0))
    reply, _ = sock.recvfrom(5000)
    assert reply[8:] == payload
    ip_layer = IP if version == 4 else IPv6
    assert len(frames(pair.link_a, ip_layer)) >= 3  # request fragments
    assert len(frames(pair.link_b, ip_layer)) >= 3  # reply fragments


@pytest.mark.parametrize("version", [4, 6])
def test_ping_own_address(pair: StackPair, version: int) -> None:
    sock = ping_socket(pair.a, version)
    record(pair)
    sock.sendto(echo_request(version, 9, b"self"), (ADDR[version, "a"], 0))
    reply, source = sock.recvfrom(100)
    assert reply[8:] == b"self" and source[0] == ADDR[version, "a"]
    assert frames(pair.link_a) == []  # never left the stack


def test_replies_go_to_the_socket_whose_identifier_they_carry(pair: StackPair) -> None:
    first, second = ping_socket(pair.a, 4), ping_socket(pair.a, 4)
    first.sendto(echo_request(4, 1, b"first"), ("10.0.0.2", 0))
    second.sendto(echo_request(4, 1, b"second"), ("10.0.0.2", 0))
    assert first.recv(100)[8:] == b"first"
    assert second.recv(100)[8:] == b"second"
    first.setblocking(False)
    with pytest.raises(BlockingIOError):
        first.recv(100)


def test_unanswered_ping_times_out(pair: StackPair) -> None:
    pair.link_b.up = False
    sock = ping_socket(pair.a, 4)
    sock.settimeout(0.5)
    start = pair.clock.now()
    sock.sendto(echo_request(4, 1, b"lost"), ("10.0.0.2", 0))
    with pytest.raises(TimeoutError):
        sock.recvfrom(100)
    assert pair.clock.now() - start == pytest.approx(0.5, abs=1e-3)


def test_broadcast_echo_request_is_not_answered(pair: StackPair) -> None:
    """RFC 1122 3.2.2.6 lets a host ignore echo requests to a broadcast address; Linux does."""
    sock = ping_socket(pair.a, 4)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.settimeout(0.5)
    record(pair)
    sock.sendto(echo_request(4, 1, b"all"), ("10.0.0.255", 0))
    with pytest.raises(TimeoutError):
        sock.recvfrom(100)
    assert frames(pair.link_b, ICMP) == []
    assert pair.b.stats["icmp4.echo_broadcast_ignored"] == 1


def test_ping_socket_accepts_only_echo_requests(pair: StackPair) -> None:
    sock = ping_socket(pair.a, 4)
    with pytest.raises(OSError) as info:
        sock.sendto(struct.pack("!BBHHH", 13, 0, 0, 0, 0), ("10.0.0.2", 0))  # timestamp
    assert info.value.errno == errno.EINVAL
    v6 = ping_socket(pair.a, 6)
    with pytest.raises(OSError) as info:
        v6.sendto(echo_request(4, 1, b""), ("fd00::2", 0))  # an IPv4 type on ICMPv6
    assert info.value.errno == errno.EINVAL


def test_echo_with_bad_checksum_is_dropped(pair: StackPair) -> None:
    record(pair)
    inject(pair.link_b, a_to_b(pair) / IP(src="10.0.0.1", dst="10.0.0.2") /
           ICMP(type=8, id=1, seq=1, chksum=0x1234) / b"bad")
    pair.run(0.01)
    assert pair.b.stats["icmp4.drop.bad_checksum"] == 1
    assert pair.b.stats["icmp4.echo_replied"] == 0
    assert frames(pair.link_b, ICMP) == []


def test_rfc4443_4_2_echo_to_multicast_is_answered_from_a_unicast_address(
        pair: StackPair) -> None:
    sock = ping_socket(pair.a, 6)
    sock.sendto(echo_request(6, 5, b"all nodes"), ("ff02::1", 0))
    reply, source = sock.recvfrom(100)
    assert reply[8:] == b"all nodes"
    assert source[0].startswith("fe80::")  # b's link-local address, never the group
    assert pair.nic_b.has_address(ipaddress.ip_address(source[0]).packed)
