# SPDX-License-Identifier: MIT
"""UDP (RFC 768, RFC 1122 4.1, RFC 8200 8.1) through the socket API, both families, both ways."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

import pytest
from scapy.layers.inet import IPOption
from scapy.layers.inet6 import IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, PadN

from tests.unit.stackframes import (
    IP,
    UDP,
    IPv6,
    a_to_b,
    frames,
    inject,
    record,
    udp_frames,
)
from ustack.socket import DatagramSocket
from ustack.stack import Stack
from ustack.testing.pair import StackPair, make_pair

FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
ADDR = {(4, "a"): "10.0.0.1", (4, "b"): "10.0.0.2", (6, "a"): "fd00::1", (6, "b"): "fd00::2"}
ANY = {4: "0.0.0.0", 6: "::"}


def udp(stack: Stack, version: int, timeout: float | None = 1.0) -> DatagramSocket:
    sock = stack.socket(FAMILY[version], socket.SOCK_DGRAM)
    assert isinstance(sock, DatagramSocket)
    sock.settimeout(timeout)
    return sock


def sockaddr(version: int, host: str, port: int) -> tuple[object, ...]:
    return (host, port) if version == 4 else (host, port, 0, 0)


def ones_sum(data: bytes) -> int:
    """RFC 1071, written out independently of ustack.wire.checksum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


# --- the basics, both ways --------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("direction", ["ab", "ba"])
def test_sendto_recvfrom_both_ways(pair: StackPair, version: int, direction: str) -> None:
    (tx_stack, tx_side), (rx_stack, rx_side) = (
        ((pair.a, "a"), (pair.b, "b")) if direction == "ab" else ((pair.b, "b"), (pair.a, "a")))
    rx = udp(rx_stack, version)
    rx.bind((ANY[version], 5000))
    tx = udp(tx_stack, version)
    tx.bind((ADDR[version, tx_side], 4000))
    tx.sendto(b"request", (ADDR[version, rx_side], 5000))
    data, source = rx.recvfrom(100)
    assert data == b"request"
    assert source == sockaddr(version, ADDR[version, tx_side], 4000)
    rx.sendto(b"reply", source[:2])
    assert tx.recvfrom(100) == (b"reply", sockaddr(version, ADDR[version, rx_side], 5000))


@pytest.mark.parametrize("version", [4, 6])
def test_connect_send_recv_and_peer_filtering(pair: StackPair, version: int) -> None:
    server = udp(pair.b, version)
    server.bind((ANY[version], 5000))
    client = udp(pair.a, version)
    client.connect((ADDR[version, "b"], 5000))
    assert client.getpeername() == sockaddr(version, ADDR[version, "b"], 5000)
    local = client.getsockname()
    assert local[0] == ADDR[version, "a"] and local[1] != 0  # bound by connect
    client.send(b"hello")
    data, source = server.recvfrom(100)
    assert data == b"hello" and source[1] == local[1]
    # a connected socket hears only its peer
    server.sendto(b"from 5000", source[:2])
    stranger = udp(pair.b, version)
    stranger.sendto(b"from elsewhere", source[:2])
    assert client.recv(100) == b"from 5000"
    client.settimeout(0.2)
    with pytest.raises(TimeoutError):
        client.recv(100)


def test_recv_into_and_truncation(pair: StackPair) -> None:
    rx = udp(pair.b, 4)
    rx.bind(("10.0.0.2", 5000))
    tx = udp(pair.a, 4)
    for message in (b"0123456789", b"second", b"third"):
        tx.sendto(message, ("10.0.0.2", 5000))
    buf = bytearray(4)
    assert rx.recv_into(buf) == 4 and buf == b"0123"  # the rest of that datagram is gone
    big = bytearray(100)
    n, source = rx.recvfrom_into(big)
    assert big[:n] == b"second" and source[0] == "10.0.0.1"
    view = memoryview(bytearray(10))
    assert rx.recv_into(view, 3) == 3 and bytes(view[:3]) == b"thi"


def test_msg_peek_leaves_the_datagram_queued(pair: StackPair) -> None:
    rx = udp(pair.b, 4)
    rx.bind(("10.0.0.2", 5000))
    udp(pair.a, 4).sendto(b"peek", ("10.0.0.2", 5000))
    assert rx.recv(100, socket.MSG_PEEK) == b"peek"
    assert rx.recv(100) == b"peek"
    rx.setblocking(False)
    with pytest.raises(BlockingIOError):
        rx.recv(100)


# --- blocking, timeouts, non-blocking ---------------------------------------------------------

def test_recv_timeout_raises_after_exactly_the_timeout_in_virtual_time(pair: StackPair) -> None:
    rx = udp(pair.b, 4, timeout=2.5)
    rx.bind(("10.0.0.2", 5000))
    start = pair.clock.now()
    with pytest.raises(TimeoutError):
        rx.recv(100)
    assert pair.clock.now() - start == pytest.approx(2.5, abs=1e-3)


def test_blocking_recv_waits_for_a_datagram_in_flight() -> None:
    pair = make_pair(latency=0.3)
    pair.run(1.0)  # let the start-up announcements land first
    rx = udp(pair.b, 4, timeout=1.0)
    rx.bind(("10.0.0.2", 5000))
    udp(pair.a, 4).sendto(b"slow", ("10.0.0.2", 5000))
    start = pair.clock.now()
    assert rx.recv(100) == b"slow"
    # ARP request and reply, then the datagram: three trips of 0.3 s
    assert pair.clock.now() - start == pytest.approx(0.9, abs=1e-3)


def test_non_blocking_raises_blocking_io_error(pair: StackPair) -> None:
    rx = udp(pair.b, 4)
    rx.bind(("10.0.0.2", 5000))
    rx.setblocking(False)
    assert not rx.getblocking() and rx.gettimeout() == 0.0
    start = pair.clock.now()
    with pytest.raises(BlockingIOError) as info:
        rx.recv(100)
    assert info.value.errno == errno.EAGAIN
    assert pair.clock.now() == start  # nothing waited
    rx.setblocking(True)
    with pytest.raises(BlockingIOError):
        rx.recv(100, socket.MSG_DONTWAIT)
    flagged = pair.b.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
    flagged.bind(("10.0.0.2", 5001))
    with pytest.raises(BlockingIOError):
        flagged.recv(100)


# --- receive buffer, checksums, lengths -------------------------------------------------------

def test_so_rcvbuf_overflow_drops_are_counted(pair: StackPair) -> None:
    rx = udp(pair.b, 4)
    rx.bind(("10.0.0.2", 5000))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 3000)
    assert rx.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 3000
    tx = udp(pair.a, 4)
    for i in range(5):
        tx.sendto(bytes([i]) * 1000, ("10.0.0.2", 5000))
    pair.run(0.01)
    assert pair.b.stats["udp.drop.rcvbuf_full"] == 2
    rx.setblocking(False)
    assert [rx.recv(2000)[0] for _ in range(3)] == [0, 1, 2]
    with pytest.raises(BlockingIOError):
        rx.recv(2000)
    tx.sendto(b"room again", ("10.0.0.2", 5000))
    pair.run(0.01)
    assert rx.recv(100) == b"room again"


@pytest.mark.parametrize("version", [4, 6])
def test_rfc768_bad_udp_checksum_is_dropped_and_counted(pair: StackPair, version: int) -> None:
    rx = udp(pair.b, version)
    rx.bind((ANY[version], 5000))
    rx.setblocking(False)
    net = (IP(src="10.0.0.1", dst="10.0.0.2") if version == 4
           else IPv6(src="fd00::1", dst="fd00::2"))
    inject(pair.link_b, a_to_b(pair) / net / UDP(sport=4000, dport=5000, chksum=0x1234) / b"x")
    inject(pair.link_b, a_to_b(pair) / net / UDP(sport=4000, dport=5000) / b"good")
    pair.run(0.01)
    assert pair.b.stats["udp.drop.bad_checksum"] == 1
    assert rx.recv(100) == b"good"
    with pytest.raises(BlockingIOError):
        rx.recv(100)


def test_rfc768_zero_checksum_means_none_over_ipv4(pair: StackPair) -> None:
    rx = udp(pair.b, 4)
    rx.bind(("10.0.0.2", 5000))
    inject(pair.link_b, a_to_b(pair) / IP(src="10.0.0.1", dst="10.0.0.2") /
           UDP(sport=4000, dport=5000, chksum=0) / b"unchecked")
    pair.run(0.01)
    rx.setblocking(False)
    assert rx.recv(100) == b"unchecked"


def test_rfc8200_8_1_zero_checksum_is_dropped_over_ipv6(pair: StackPair) -> None:
    rx = udp(pair.b, 6)
    rx.bind(("::", 5000))
    rx.setblocking(False)
    inject(pair.link_b, a_to_b(pair) / IPv6(src="fd00::1", dst="fd00::2") /
           UDP(sport=4000, dport=5000, chksum=0) / b"unchecked")
    pair.run(0.01)
    assert pair.b.stats["udp.drop.bad_checksum"] == 1
    with pytest.raises(BlockingIOError):
        rx.recv(100)


@pytest.mark.parametrize("version", [4, 6])
def test_rfc768_a_computed_zero_checksum_is_sent_as_all_ones(pair: StackPair,
                                                             version: int) -> None:
    src, dst = ADDR[version, "a"], ADDR[version, "b"]
    pseudo = (ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
              + struct.pack("!HH", 17, 10))
    header = struct.pack("!HHHH", 4000, 5000, 10, 0)
    data = struct.pack("!H", 0xFFFF - ones_sum(pseudo + header))  # makes the sum 0xFFFF
    rx = udp(pair.b, version)
    rx.bind((ANY[version], 5000))
    tx = udp(pair.a, version)
    tx.bind((src, 4000))
    record(pair)
    tx.sendto(data, (dst, 5000))
    assert rx.recv(100) == data
    (frame,) = udp_frames(pair.link_a, 5000)
    assert frame[UDP].chksum == 0xFFFF


def test_bad_ipv4_header_checksum_is_dropped_and_counted(pair: StackPair) -> None:
    rx = udp(pair.b, 4)
    rx.bind(("10.0.0.2", 5000))
    rx.setblocking(False)
    inject(pair.link_b, a_to_b(pair) / IP(src="10.0.0.1", dst="10.0.0.2", chksum=0xBEEF) /
           UDP(sport=4000, dport=5000) / b"x")
    pair.run(0.01)
    assert pair.b.stats["ipv4.drop.bad_checksum"] == 1
    with pytest.raises(BlockingIOError):
        rx.recv(100)


def test_udp_length_longer_than_the_packet_is_dropped(pair: StackPair) -> None:
    rx = udp(pair.b, 4)
    rx.bind(("10.0.0.2", 5000))
    rx.setblocking(False)
    inject(pair.link_b, a_to_b(pair) / IP(src="10.0.0.1", dst="10.0.0.2") /
           UDP(sport=4000, dport=5000, len=100, chksum=0) / b"short")
    pair.run(0.01)
    assert pair.b.stats["udp.drop.bad_length"] == 1
    with pytest.raises(BlockingIOError):
        rx.recv(100)


def test_bytes_past_the_udp_length_are_not_data(pair: StackPair) -> None:
    """RFC 768: the length field says where the datagram ends, whatever follows."""
    rx = udp(pair.b, 4)
    rx.bind(("10.0.0.2", 5000))
    rx.setblocking(False)
    inject(pair.link_b, a_to_b(pair) / IP(src="10.0.0.1", dst="10.0.0.2") /
           UDP(sport=4000, dport=5000, len=12, chksum=0) / b"datatrailer")
    pair.run(0.01)
    assert rx.recv(100) == b"data"


# --- broadcast --------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["10.0.0.255", "255.255.255.255", "<broadcast>"])
def test_broadcast_needs_so_broadcast(pair: StackPair, target: str) -> None:
    rx = udp(pair.b, 4)
    rx.bind(("0.0.0.0", 6000))
    tx = udp(pair.a, 4)
    with pytest.raises(OSError) as info:
        tx.sendto(b"everyone", (target, 6000))
    assert info.value.errno == errno.EACCES
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    assert tx.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
    record(pair)
    tx.sendto(b"everyone", (target, 6000))
    assert rx.recv(100) == b"everyone"
    (frame,) = udp_frames(pair.link_a, 6000)
    assert frame.dst == "ff:ff:ff:ff:ff:ff"
    assert frame[IP].dst == ("10.0.0.255" if target == "10.0.0.255" else "255.255.255.255")
    assert frames(pair.link_a, UDP)[0][IP].src == "10.0.0.1"


def test_broadcast_skips_sockets_bound_to_a_unicast_address(pair: StackPair) -> None:
    unicast = udp(pair.b, 4)
    unicast.bind(("10.0.0.2", 6000))
    unicast.setblocking(False)
    tx = udp(pair.a, 4)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    tx.sendto(b"everyone", ("10.0.0.255", 6000))
    pair.run(0.01)
    with pytest.raises(BlockingIOError):
        unicast.recv(100)


def test_broadcast_reaches_every_socket_sharing_the_port(pair: StackPair) -> None:
    """Linux (__udp4_lib_mcast_deliver): each matching SO_REUSEADDR socket gets a copy."""
    listeners = []
    for _ in range(3):
        sock = udp(pair.b, 4)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", 6000))
        sock.setblocking(False)
        listeners.append(sock)
    tx = udp(pair.a, 4)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    tx.sendto(b"everyone", ("10.0.0.255", 6000))
    pair.run(0.01)
    assert [s.recv(100) for s in listeners] == [b"everyone"] * 3


# --- errors and options -----------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 6])
def test_oversized_datagram_is_emsgsize(pair: StackPair, version: int) -> None:
    tx = udp(pair.a, version)
    limit = 65507 if version == 4 else 65527
    with pytest.raises(OSError) as info:
        tx.sendto(bytes(limit + 1), (ADDR[version, "b"], 5000))
    assert info.value.errno == errno.EMSGSIZE


def test_send_without_a_destination_is_edestaddrreq(pair: StackPair) -> None:
    with pytest.raises(OSError) as info:
        udp(pair.a, 4).send(b"where to?")
    assert info.value.errno == errno.EDESTADDRREQ


def test_closed_socket_is_ebadf(pair: StackPair) -> None:
    sock = udp(pair.a, 4)
    sock.bind(("10.0.0.1", 5000))
    sock.close()
    for call in (lambda: sock.recv(10), lambda: sock.sendto(b"x", ("10.0.0.2", 9)),
                 lambda: sock.bind(("10.0.0.1", 5001))):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF
    sock.close()  # idempotent
    udp(pair.a, 4).bind(("10.0.0.1", 5000))  # and its port is free


def test_connect_to_the_unspecified_address_dissolves_the_association(pair: StackPair) -> None:
    sock = udp(pair.a, 4)
    sock.connect(("10.0.0.2", 5000))
    port = sock.getsockname()[1]
    sock.connect(("0.0.0.0", 0))
    with pytest.raises(OSError) as info:
        sock.getpeername()
    assert info.value.errno == errno.ENOTCONN
    assert sock.getsockname() == ("0.0.0.0", port)
    rx = udp(pair.b, 4)
    rx.bind(("10.0.0.2", 5001))
    rx.sendto(b"anyone may write now", ("10.0.0.1", port))
    assert sock.recv(100) == b"anyone may write now"


@pytest.mark.parametrize("version", [4, 6])
def test_ttl_and_traffic_class_options_reach_the_wire(pair: StackPair, version: int) -> None:
    tx = udp(pair.a, version)
    if version == 4:
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 7)
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x28)
    else:
        tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 7)
        tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x28)
    record(pair)
    tx.sendto(b"x", (ADDR[version, "b"], 5000))
    default = udp(pair.a, version)
    default.sendto(b"y", (ADDR[version, "b"], 5000))
    pair.run(0.01)
    first, second = udp_frames(pair.link_a, 5000)
    if version == 4:
        assert (first[IP].ttl, first[IP].tos) == (7, 0x28)
        assert (second[IP].ttl, second[IP].tos) == (64, 0)
    else:
        assert (first[IPv6].hlim, first[IPv6].tc) == (7, 0x28)
        assert (second[IPv6].hlim, second[IPv6].tc) == (64, 0)


# --- headers before UDP -----------------------------------------------------------------------

def test_rfc1122_3_2_1_8_datagram_with_ip_options_is_delivered(pair: StackPair) -> None:
    rx = udp(pair.b, 4)
    rx.bind(("10.0.0.2", 5000))
    rx.setblocking(False)
    options = IPOption(b"\x01\x01\x01\x00")  # NOP NOP NOP EOL
    inject(pair.link_b, a_to_b(pair) / IP(src="10.0.0.1", dst="10.0.0.2", options=[options]) /
           UDP(sport=4000, dport=5000) / b"with options")
    pair.run(0.01)
    assert rx.recvfrom(100) == (b"with options", ("10.0.0.1", 4000))


def test_rfc8200_4_extension_headers_before_udp_are_walked(pair: StackPair) -> None:
    rx = udp(pair.b, 6)
    rx.bind(("::", 5000))
    rx.setblocking(False)
    inject(pair.link_b, a_to_b(pair) / IPv6(src="fd00::1", dst="fd00::2") /
           IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0\0\0\0")]) /
           IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")]) /
           UDP(sport=4000, dport=5000) / b"behind extensions")
    pair.run(0.01)
    assert rx.recvfrom(100)[0] == b"behind extensions"
