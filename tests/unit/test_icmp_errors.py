# SPDX-License-Identifier: MIT
"""ICMP errors sent (RFC 1122 3.2.2, RFC 1812 4.3.2, RFC 4443 2.4) and received (RFC 1122
4.1.3.3, RFC 1191, RFC 8201): what is sent, what never is, how fast, and who hears of it."""

from __future__ import annotations

import errno
import socket
import struct

import pytest
from scapy.layers.inet import IPerror, UDPerror
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6DestUnreach,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPerror6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
)
from scapy.packet import Raw

from tests.unit.stackframes import (
    ICMP,
    IP,
    UDP,
    IPv6,
    Packet,
    a_to_b,
    b_to_a,
    frames,
    inject,
    record,
    udp_frames,
)
from ustack.socket import DatagramSocket
from ustack.stack import Stack, StackOptions
from ustack.testing.pair import StackPair, make_pair

FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
ADDR = {(4, "a"): "10.0.0.1", (4, "b"): "10.0.0.2", (6, "a"): "fd00::1", (6, "b"): "fd00::2"}
ANY = {4: "0.0.0.0", 6: "::"}
ERROR_LAYER = {4: ICMP, 6: ICMPv6DestUnreach}


def udp(stack: Stack, version: int, timeout: float | None = 1.0) -> DatagramSocket:
    sock = stack.socket(FAMILY[version], socket.SOCK_DGRAM)
    assert isinstance(sock, DatagramSocket)
    sock.settimeout(timeout)
    return sock


def icmp4_errors(frames_: list[Packet]) -> list[Packet]:
    return [f for f in frames_ if f.haslayer(ICMP) and f[ICMP].type not in (0, 8)]


def icmp6_errors(frames_: list[Packet]) -> list[Packet]:
    return [f for f in frames_ if f.haslayer(IPv6) and f[IPv6].nh == 58
            and bytes(f[IPv6].payload)[0] < 128]


def errors_of(pair: StackPair, side: str, version: int) -> list[Packet]:
    link = pair.link_b if side == "b" else pair.link_a
    return icmp4_errors(frames(link)) if version == 4 else icmp6_errors(frames(link))


def resolve(pair: StackPair) -> None:
    """Let both sides learn each other (IPv4 and IPv6) with traffic that draws no error."""
    for version in (4, 6):
        rx = udp(pair.b, version)
        rx.bind((ANY[version], 9))
        udp(pair.a, version).sendto(b"", (ADDR[version, "b"], 9))
        rx.recv(1)
        rx.sendto(b"", (ADDR[version, "a"], 9))
        rx.close()
    pair.run(0.01)


def icmp4_message(kind: int, code: int, rest: int, quoted: bytes) -> bytes:
    header = struct.pack("!BBHI", kind, code, 0, rest) + quoted
    total = sum(struct.unpack(f"!{len(header) // 2}H", header + b"\0" * (len(header) % 2)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return header[:2] + struct.pack("!H", ~total & 0xFFFF) + header[4:]


# --- errors sent ------------------------------------------------------------------------------

def test_rfc1122_3_2_2_1_port_unreachable_ipv4(pair: StackPair) -> None:
    tx = udp(pair.a, 4)
    tx.bind(("10.0.0.1", 4000))
    record(pair)
    tx.sendto(b"p" * 1000, ("10.0.0.2", 9999))
    pair.run(0.01)
    (original,) = udp_frames(pair.link_a, 9999)
    (error,) = errors_of(pair, "b", 4)
    assert (error[ICMP].type, error[ICMP].code) == (3, 3)
    assert (error[IP].src, error[IP].dst) == ("10.0.0.2", "10.0.0.1")
    quoted = bytes(error[ICMP].payload)
    # RFC 1812 4.3.2.3: as much of the original as fits in 576 bytes, and at least 28
    assert len(error[IP]) == 576
    assert quoted == bytes(original[IP])[:len(quoted)]
    assert error[UDPerror].sport == 4000 and error[UDPerror].dport == 9999
    assert pair.b.stats["udp.drop.no_listener"] == 1
    assert pair.b.stats["icmp4.tx_error_3_3"] == 1


def test_rfc4443_3_1_port_unreachable_ipv6(pair: StackPair) -> None:
    tx = udp(pair.a, 6)
    tx.bind(("fd00::1", 4000))
    record(pair)
    tx.sendto(b"p" * 1400, ("fd00::2", 9999))
    pair.run(0.01)
    (original,) = udp_frames(pair.link_a, 9999)
    (error,) = errors_of(pair, "b", 6)
    assert (error[ICMPv6DestUnreach].type, error[ICMPv6DestUnreach].code) == (1, 4)
    assert (error[IPv6].src, error[IPv6].dst) == ("fd00::2", "fd00::1")
    # RFC 4443 2.4 (c): as much of the invoking packet as fits in the minimum MTU
    assert len(error[IPv6]) == 1280
    quoted = bytes(error[ICMPv6DestUnreach].payload)
    assert quoted == bytes(original[IPv6])[:len(quoted)]
    assert error[UDPerror].dport == 9999


def test_rfc1122_3_2_2_no_error_for_broadcast_destinations(pair: StackPair) -> None:
    resolve(pair)
    tx = udp(pair.a, 4)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    record(pair)
    tx.sendto(b"x", ("10.0.0.255", 9999))
    tx.sendto(b"x", ("255.255.255.255", 9999))
    # a unicast IP datagram that came as a link-layer broadcast
    inject(pair.link_b, a_to_b(pair).__class__(src=a_to_b(pair).src, dst="ff:ff:ff:ff:ff:ff")
           / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=4000, dport=9999) / b"x")
    pair.run(0.01)
    assert errors_of(pair, "b", 4) == []
    assert pair.b.stats["icmp4.error_suppressed"] == 3


def test_rfc1122_3_2_2_no_error_for_multicast_destinations(pair: StackPair) -> None:
    resolve(pair)
    pair.nic_b.join_group(bytes([224, 0, 0, 9]))
    record(pair)
    udp(pair.a, 4).sendto(b"x", ("224.0.0.9", 9999))
    udp(pair.a, 6).sendto(b"x", ("ff02::1", 9999))  # RFC 4443 2.4 (e.3)
    pair.run(0.01)
    assert pair.b.stats["udp.drop.no_listener"] == 2
    assert errors_of(pair, "b", 4) == errors_of(pair, "b", 6) == []


def test_rfc1122_3_2_2_no_error_about_a_source_that_is_not_a_host(pair: StackPair) -> None:
    resolve(pair)
    record(pair)
    inject(pair.link_b, a_to_b(pair) / IP(src="0.0.0.0", dst="10.0.0.2") /
           UDP(sport=68, dport=9999) / b"x")
    inject(pair.link_b, a_to_b(pair) / IPv6(src="::", dst="fd00::2") /
           UDP(sport=546, dport=9999) / b"x")
    pair.run(0.01)
    assert errors_of(pair, "b", 4) == errors_of(pair, "b", 6) == []


def fragmented(pair: StackPair, version: int, upper: bytes, nh: int, ident: int) -> Packet:
    """The first fragment (of two) of an IP packet carrying ``upper``, from a to b."""
    if version == 4:
        return a_to_b(pair) / IP(src="10.0.0.1", dst="10.0.0.2", id=ident, proto=nh,
                                 flags="MF") / Raw(upper[:48])
    return a_to_b(pair) / IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrFragment(
        nh=nh, m=1, id=ident) / Raw(upper[:48])


@pytest.mark.parametrize("version", [4, 6])
def test_no_time_exceeded_about_an_icmp_error(pair: StackPair, version: int) -> None:
    """RFC 1122 3.2.2 / RFC 4443 2.4 (e.1): never an error about an error."""
    resolve(pair)
    if version == 4:
        inner = bytes(IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=1, dport=2))
        upper = icmp4_message(3, 3, 0, inner) + bytes(64)
        frame = fragmented(pair, 4, upper, 1, 300)
    else:
        inner = bytes(IPv6(src="fd00::2", dst="fd00::1") / UDP(sport=1, dport=2))
        upper = bytes(IPv6(src="fd00::1", dst="fd00::2") / ICMPv6DestUnreach(code=4)
                      / Raw(inner + bytes(64)))[40:]
        frame = fragmented(pair, 6, upper, 58, 300)
    record(pair)
    inject(pair.link_b, frame)
    pair.run(max(StackOptions().reassembly_timeout, StackOptions().reassembly_timeout6) + 1.0)
    assert pair.b.stats[f"ipv{version}.drop.reassembly_timeout"] == 1
    assert errors_of(pair, "b", version) == []


@pytest.mark.parametrize("version", [4, 6])
def test_time_exceeded_about_a_fragmented_echo_request(pair: StackPair, version: int) -> None:
    """The contrast to the above: an echo request is not an error, so it is reported."""
    resolve(pair)
    if version == 4:
        upper, nh = icmp4_message(8, 0, 0x00010001, bytes(64)), 1
    else:
        upper, nh = bytes(IPv6(src="fd00::1", dst="fd00::2") / Raw(b"\x80\0\0\0\0\1\0\1"
                                                                    + bytes(64)))[40:], 58
    record(pair)
    inject(pair.link_b, fragmented(pair, version, upper, nh, 301))
    pair.run(max(StackOptions().reassembly_timeout, StackOptions().reassembly_timeout6) + 1.0)
    (error,) = errors_of(pair, "b", version)
    layer = ICMP if version == 4 else ICMPv6TimeExceeded
    assert (error[layer].type, error[layer].code) == ((11, 1) if version == 4 else (3, 1))


@pytest.mark.parametrize("version", [4, 6])
def test_icmp_errors_are_rate_limited_by_a_token_bucket(version: int) -> None:
    """RFC 1812 4.3.2.8 / RFC 4443 2.4 (f): a burst, then the refill rate."""
    pair = make_pair(options=StackOptions(icmp_rate=10.0, icmp_burst=5))
    resolve(pair)
    tx = udp(pair.a, version)
    record(pair)
    for _ in range(20):
        tx.sendto(b"x", (ADDR[version, "b"], 9999))
    pair.run(0.01)
    assert len(errors_of(pair, "b", version)) == 5  # the burst
    assert pair.b.stats[f"icmp{version}.drop.rate_limited"] == 15
    pair.run(0.34)  # 0.35 s since the burst: 3.5 tokens
    record(pair)
    for _ in range(20):
        tx.sendto(b"x", (ADDR[version, "b"], 9999))
    pair.run(0.01)
    assert len(errors_of(pair, "b", version)) == 3
    pair.run(10.0)  # refilled, but never past the burst
    record(pair)
    for _ in range(20):
        tx.sendto(b"x", (ADDR[version, "b"], 9999))
    pair.run(0.01)
    assert len(errors_of(pair, "b", version)) == 5


def test_rfc1122_3_2_2_1_protocol_unreachable_ipv4(pair: StackPair) -> None:
    resolve(pair)
    record(pair)
    probe = IP(src="10.0.0.1", dst="10.0.0.2", proto=253) / Raw(b"experimental")
    inject(pair.link_b, a_to_b(pair) / probe)
    pair.run(0.01)
    (error,) = errors_of(pair, "b", 4)
    assert (error[ICMP].type, error[ICMP].code) == (3, 2)
    assert bytes(error[ICMP].payload) == bytes(probe)
    assert pair.b.stats["ipv4.drop.unknown_protocol"] == 1


@pytest.mark.parametrize("with_extension", [False, True])
def test_rfc8200_4_unknown_next_header_is_a_parameter_problem(pair: StackPair,
                                                              with_extension: bool) -> None:
    resolve(pair)
    record(pair)
    if with_extension:
        probe = IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrDestOpt(nh=253) / Raw(b"?" * 8)
    else:
        probe = IPv6(src="fd00::1", dst="fd00::2", nh=253) / Raw(b"?" * 8)
    inject(pair.link_b, a_to_b(pair) / probe)
    pair.run(0.01)
    (error,) = errors_of(pair, "b", 6)
    assert error[ICMPv6ParamProblem].code == 1
    # RFC 4443 3.4: the pointer is the offset of the Next Header field that named it
    assert error[ICMPv6ParamProblem].ptr == (40 if with_extension else 6)
    assert bytes(error[ICMPv6ParamProblem].payload) == bytes(probe)


def test_unknown_next_header_to_multicast_draws_no_error(pair: StackPair) -> None:
    resolve(pair)
    record(pair)
    inject(pair.link_b, a_to_b(pair).__class__(src=a_to_b(pair).src, dst="33:33:00:00:00:01")
           / IPv6(src="fd00::1", dst="ff02::1", nh=253) / Raw(b"?" * 8))
    pair.run(0.01)
    assert errors_of(pair, "b", 6) == []


# --- errors received --------------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 6])
def test_port_unreachable_is_econnrefused_on_a_connected_socket(pair: StackPair,
                                                                version: int) -> None:
    sock = udp(pair.a, version)
    sock.connect((ADDR[version, "b"], 9999))
    sock.send(b"anyone?")
    with pytest.raises(ConnectionRefusedError):
        sock.recv(100)
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):  # reported once
        sock.recv(100)
    sock.send(b"again")
    pair.run(0.01)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    sock.send(b"and again")
    pair.run(0.01)
    with pytest.raises(ConnectionRefusedError):  # a pending error fails the next send too
        sock.send(b"more")


@pytest.mark.parametrize("version", [4, 6])
def test_unconnected_sockets_ignore_icmp_errors(pair: StackPair, version: int) -> None:
    sock = udp(pair.a, version, timeout=0.2)
    sock.sendto(b"anyone?", (ADDR[version, "b"], 9999))
    with pytest.raises(TimeoutError):
        sock.recv(100)
    assert pair.a.stats["udp.icmp_error_ignored"] == 1
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


@pytest.mark.parametrize("version", [4, 6])
def test_errors_reach_only_the_socket_they_are_about(pair: StackPair, version: int) -> None:
    server = udp(pair.b, version)
    server.bind((ANY[version], 5000))
    good, bad = udp(pair.a, version), udp(pair.a, version)
    good.connect((ADDR[version, "b"], 5000))
    bad.connect((ADDR[version, "b"], 9999))
    good.send(b"fine")
    bad.send(b"refused")
    assert server.recv(100) == b"fine"
    pair.run(0.01)
    assert good.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    assert bad.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED


@pytest.mark.parametrize("version", [4, 6])
def test_port_unreachable_for_a_reassembled_datagram_reaches_the_socket(
        pair: StackPair, version: int) -> None:
    sock = udp(pair.a, version)
    sock.connect((ADDR[version, "b"], 9999))
    record(pair)
    sock.send(b"L" * 4000)  # fragmented on the way, reassembled by b
    pair.run(0.01)
    (error,) = errors_of(pair, "b", version)
    quoted = error[IPerror] if version == 4 else error[IPerror6]
    if version == 6:  # the quote is a well-formed packet: UDP right after the header
        assert quoted.nh == 17
    assert quoted[UDPerror].dport == 9999
    with pytest.raises(ConnectionRefusedError):
        sock.recv(100)


def test_error_about_a_port_nobody_has_is_counted(pair: StackPair) -> None:
    resolve(pair)
    quoted = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1111, dport=2222))
    inject(pair.link_a, b_to_a(pair) / IP(src="10.0.0.2", dst="10.0.0.1", proto=1) /
           Raw(icmp4_message(3, 3, 0, quoted)))
    pair.run(0.01)
    assert pair.a.stats["icmp.drop.no_listener"] == 1


def test_error_with_too_short_a_quote_is_dropped(pair: StackPair) -> None:
    resolve(pair)
    quoted = bytes(IP(src="10.0.0.1", dst="10.0.0.2", proto=17))[:20] + b"\x04\x57"
    inject(pair.link_a, b_to_a(pair) / IP(src="10.0.0.2", dst="10.0.0.1", proto=1) /
           Raw(icmp4_message(3, 3, 0, quoted)))
    pair.run(0.01)
    assert pair.a.stats["icmp4.drop.truncated"] == 1


# --- path MTU ---------------------------------------------------------------------------------

def sent_sizes(pair: StackPair, version: int, dport: int) -> list[int]:
    layer = IP if version == 4 else IPv6
    return [len(f[layer]) for f in frames(pair.link_a, layer)
            if (f[layer].proto if version == 4 else f[layer].nh) in (17, 44)]


@pytest.mark.parametrize(("reported", "expected"), [(1000, 1000), (300, 552)])
def test_rfc1191_fragmentation_needed_lowers_the_path_mtu(pair: StackPair, reported: int,
                                                          expected: int) -> None:
    resolve(pair)
    rx = udp(pair.b, 4)
    rx.bind(("0.0.0.0", 5000))
    sock = udp(pair.a, 4)
    sock.connect(("10.0.0.2", 5000))
    record(pair)
    sock.send(b"m" * 1400)
    pair.run(0.01)
    (original,) = udp_frames(pair.link_a, 5000)
    assert len(original[IP]) == 1428
    quoted = bytes(original[IP])[:28]
    inject(pair.link_a, b_to_a(pair) / IP(src="10.0.0.254", dst="10.0.0.1", proto=1) /
           Raw(icmp4_message(3, 4, reported, quoted)))  # rest: unused(16) | next-hop MTU(16)
    pair.run(0.01)
    record(pair)
    sock.send(b"m" * 1400)
    pair.run(0.01)
    sizes = sent_sizes(pair, 4, 5000)
    assert max(sizes) <= expected
    assert len(sizes) == -(-1408 // ((expected - 20) & ~7))  # as few pieces as fit
    assert rx.recv(2000) == rx.recv(2000) == b"m" * 1400
    # other destinations keep the link MTU
    record(pair)
    udp(pair.a, 4).sendto(b"m" * 1400, ("10.0.0.3", 5000))
    pair.run(0.01)
    assert udp_frames(pair.link_a) == [] or max(
        len(f[IP]) for f in udp_frames(pair.link_a)) == 1428


@pytest.mark.parametrize(("reported", "expected"), [(1300, 1300), (1280, 1280), (600, 1500)])
def test_rfc8201_packet_too_big_lowers_the_path_mtu(pair: StackPair, reported: int,
                                                    expected: int) -> None:
    resolve(pair)
    rx = udp(pair.b, 6)
    rx.bind(("::", 5000))
    sock = udp(pair.a, 6)
    sock.connect(("fd00::2", 5000))
    record(pair)
    sock.send(b"m" * 1400)
    pair.run(0.01)
    (original,) = udp_frames(pair.link_a, 5000)
    assert len(original[IPv6]) == 1448
    inject(pair.link_a, b_to_a(pair) / IPv6(src="fd00::99", dst="fd00::1") /
           ICMPv6PacketTooBig(mtu=reported) / Raw(bytes(original[IPv6])[:1232]))
    pair.run(0.01)
    record(pair)
    sock.send(b"m" * 1400)
    pair.run(0.01)
    sizes = sent_sizes(pair, 6, 5000)
    if expected == 1500:  # RFC 8201 4: a next-hop MTU below 1280 is discarded
        assert sizes == [1448] and rx.recv(2000) == b"m" * 1400
        assert pair.a.stats["icmp6.ptb_below_minimum"] == 1
        return
    assert len(sizes) == 2 and max(sizes) <= expected
    assert rx.recv(2000) == rx.recv(2000) == b"m" * 1400
    assert all(f.haslayer(IPv6ExtHdrFragment) for f in frames(pair.link_a, UDP))


@pytest.mark.parametrize(("option", "multicast", "error"), [
    (0x1E, False, False),  # 00: skip it
    (0x5E, False, False),  # 01: discard silently
    (0x9E, False, True),  # 10: discard, report even to a multicast destination
    (0x9E, True, True),
    (0xDE, False, True),  # 11: discard, report unless the destination was multicast
    (0xDE, True, False),
])
def test_rfc8200_4_2_unrecognized_option_actions(pair: StackPair, option: int, multicast: bool,
                                                 error: bool) -> None:
    resolve(pair)
    rx = udp(pair.b, 6)
    rx.bind(("::", 5000))
    rx.setblocking(False)
    dst = "ff02::1" if multicast else "fd00::2"
    eth = a_to_b(pair)
    if multicast:
        eth.dst = "33:33:00:00:00:01"
    probe = (IPv6(src="fd00::1", dst=dst) /
             IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=option, optdata=b"\0\0\0\0")]) /
             UDP(sport=4000, dport=5000) / b"opt")
    record(pair)
    inject(pair.link_b, eth / probe)
    pair.run(0.01)
    delivered = []
    try:
        delivered.append(rx.recv(100))
    except BlockingIOError:
        pass
    assert delivered == ([b"opt"] if option == 0x1E else [])
    errors = errors_of(pair, "b", 6)
    assert len(errors) == int(error)
    if error:
        problem = errors[0][ICMPv6ParamProblem]
        assert (problem.code, problem.ptr) == (2, 42)  # the option type byte
        assert errors[0][IPv6].src == "fd00::2"  # a unicast source even when asked by multicast
