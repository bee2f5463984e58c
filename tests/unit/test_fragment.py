# SPDX-License-Identifier: MIT
"""Fragmentation and reassembly: IPv4 (RFC 791 3.2, RFC 815) and IPv6 (RFC 8200 4.5, RFC 5722)."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import IPerror, UDPerror
from scapy.layers.inet6 import (
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPerror6,
    IPv6ExtHdrFragment,
)
from scapy.packet import Raw

from tests.unit.stackframes import ICMP, IP, UDP, IPv6, Packet, a_to_b, frames, inject, record
from ustack.network.ipv6 import IPv6Protocol
from ustack.socket import DatagramSocket
from ustack.stack import StackOptions
from ustack.testing.pair import StackPair, make_pair

A = {4: "10.0.0.1", 6: "fd00::1"}
B = {4: "10.0.0.2", 6: "fd00::2"}
FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
TIMEOUT = StackOptions().reassembly_timeout
TIMEOUT6 = StackOptions().reassembly_timeout6  # RFC 8200 4.5: 60 s


def receiver(pair: StackPair, version: int, side: str = "b", port: int = 5000) -> DatagramSocket:
    stack = pair.b if side == "b" else pair.a
    sock = stack.socket(FAMILY[version], socket.SOCK_DGRAM)
    assert isinstance(sock, DatagramSocket)
    sock.bind(("::" if version == 6 else "0.0.0.0", port))
    sock.setblocking(False)
    return sock


def drain(sock: DatagramSocket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(70000))
        except BlockingIOError:
            return out


def udp_payload(version: int, data: bytes, src: str | None = None) -> bytes:
    """The UDP header and data as the IP payload (checksummed by scapy)."""
    if version == 4:
        return bytes(IP(src=src or A[4], dst=B[4]) / UDP(sport=4000, dport=5000) / data)[20:]
    return bytes(IPv6(src=src or A[6], dst=B[6]) / UDP(sport=4000, dport=5000) / data)[40:]


def fragment(pair: StackPair, version: int, whole: bytes, offset: int, size: int, ident: int,
             more: bool | None = None, src: str | None = None,
             nh: int = 17) -> Packet:
    """One fragment of ``whole`` (an IP payload) from a to b, built by hand."""
    piece = whole[offset:offset + size]
    if more is None:
        more = offset + len(piece) < len(whole)
    if version == 4:
        return a_to_b(pair) / IP(src=src or A[4], dst=B[4], id=ident, proto=nh,
                                 flags="MF" if more else 0, frag=offset // 8) / Raw(piece)
    return a_to_b(pair) / IPv6(src=src or A[6], dst=B[6]) / IPv6ExtHdrFragment(
        nh=nh, offset=offset // 8, m=int(more), id=ident) / Raw(piece)


def ip_packets(frames_: list[Packet], version: int) -> list[Packet]:
    layer = IP if version == 4 else IPv6
    return [f[layer] for f in frames_ if f.haslayer(layer)]


# --- sending large datagrams ------------------------------------------------------------------

@pytest.mark.parametrize("mtu", [1500, 1280])
@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("direction", ["ab", "ba"])
def test_large_udp_datagram_is_fragmented_to_fit_and_reassembled(
        mtu: int, version: int, direction: str) -> None:
    pair = make_pair(mtu=mtu)
    sender, side = (pair.a, "b") if direction == "ab" else (pair.b, "a")
    link = pair.link_a if direction == "ab" else pair.link_b
    rx = receiver(pair, version, side)
    data = bytes(i % 253 for i in range(5000))
    record(pair)
    dst = (B if direction == "ab" else A)[version]
    sender.socket(FAMILY[version], socket.SOCK_DGRAM).sendto(data, (dst, 5000))
    pair.run(0.01)
    assert drain(rx) == [data]
    packets = [p for p in ip_packets(frames(link), version)
               if (p.proto if version == 4 else p.nh) in (17, 44)]
    assert len(packets) >= 4
    for p in packets:
        assert len(p) <= mtu
    if version == 4:
        assert {p.id for p in packets} == {packets[0].id}
        assert all(p.flags.MF for p in packets[:-1]) and not packets[-1].flags.MF
        assert not any(p.flags.DF for p in packets)
        offsets = [p.frag * 8 for p in packets]
        sizes = [len(p.payload) for p in packets]
    else:
        frags = [p[IPv6ExtHdrFragment] for p in packets]
        assert {f.id for f in frags} == {frags[0].id}
        assert all(f.m for f in frags[:-1]) and not frags[-1].m
        assert all(f.nh == 17 for f in frags)
        offsets = [f.offset * 8 for f in frags]
        sizes = [len(f.payload) for f in frags]
    # RFC 791 / RFC 8200: 8-byte aligned pieces that tile the datagram exactly
    assert all(size % 8 == 0 for size in sizes[:-1])
    assert offsets == [sum(sizes[:i]) for i in range(len(sizes))]
    assert sum(sizes) == len(data) + 8
    stack = pair.b if direction == "ab" else pair.a
    assert stack.stats[f"ipv{version}.reassembled"] == 1


@pytest.mark.parametrize("version", [4, 6])
def test_largest_udp_datagram_goes_through(pair: StackPair, version: int) -> None:
    rx = receiver(pair, version)
    biggest = 65535 - 8 - (20 if version == 4 else 0)  # IPv6: the payload length bounds it
    data = bytes(i % 256 for i in range(biggest))
    pair.a.socket(FAMILY[version], socket.SOCK_DGRAM).sendto(data, (B[version], 5000))
    pair.run(0.01)
    assert drain(rx) == [data]


# --- reassembly of hand-made fragments --------------------------------------------------------

@pytest.mark.parametrize("version", [4, 6])
def test_fragments_out_of_order(pair: StackPair, version: int) -> None:
    rx = receiver(pair, version)
    whole = udp_payload(version, bytes(range(256)) * 10)
    pieces = [fragment(pair, version, whole, off, 800, 77) for off in range(0, len(whole), 800)]
    for frame in reversed(pieces):
        inject(pair.link_b, frame)
    pair.run(0.01)
    assert drain(rx) == [bytes(range(256)) * 10]
    assert pair.b.stats[f"ipv{version}.reassembled"] == 1


@pytest.mark.parametrize("version", [4, 6])
def test_duplicate_fragments_are_ignored(pair: StackPair, version: int) -> None:
    rx = receiver(pair, version)
    whole = udp_payload(version, b"d" * 2000)
    f0, f1, f2 = (fragment(pair, version, whole, off, 800, 78) for off in (0, 800, 1600))
    for frame in (f0, f1, f1, f0, f2):
        inject(pair.link_b, frame)
    pair.run(0.01)
    assert drain(rx) == [b"d" * 2000]
    assert pair.b.stats[f"ipv{version}.fragment_duplicate"] == 2


@pytest.mark.parametrize("version", [4, 6])
def test_rfc5722_overlapping_fragments_discard_the_datagram(pair: StackPair,
                                                            version: int) -> None:
    rx = receiver(pair, version)
    whole = udp_payload(version, b"o" * 2400)
    first = fragment(pair, version, whole, 0, 800, 79)
    overlap = fragment(pair, version, whole, 792, 800, 79)  # starts inside the first
    inject(pair.link_b, first)
    inject(pair.link_b, overlap)
    for off in range(800, len(whole), 800):  # the rest of the genuine fragments
        inject(pair.link_b, fragment(pair, version, whole, off, 800, 79))
    pair.run(1.0)
    assert drain(rx) == []
    assert pair.b.stats[f"ipv{version}.drop.fragment_overlap"] == 1


@pytest.mark.parametrize("version", [4, 6])
def test_datagrams_with_the_same_ident_from_different_sources_stay_apart(
        pair: StackPair, version: int) -> None:
    rx = receiver(pair, version)
    other = "10.0.0.3" if version == 4 else "fd00::3"
    mine, theirs = udp_payload(version, b"m" * 1500), udp_payload(version, b"t" * 1500, other)
    for off in (0, 800):
        inject(pair.link_b, fragment(pair, version, mine, off, 800, 5))
        inject(pair.link_b, fragment(pair, version, theirs, off, 800, 5, src=other))
    pair.run(0.01)
    assert sorted(drain(rx)) == [b"m" * 1500, b"t" * 1500]


def test_rfc6946_atomic_fragment_is_delivered_at_once(pair: StackPair) -> None:
    rx = receiver(pair, 6)
    whole = udp_payload(6, b"atomic")
    inject(pair.link_b, fragment(pair, 6, whole, 0, len(whole), 80, more=False))
    pair.run(0.01)
    assert drain(rx) == [b"atomic"]
    ipv6_protocol = pair.b.network_protocols[0x86DD]
    assert isinstance(ipv6_protocol, IPv6Protocol)
    assert len(ipv6_protocol.reassembler) == 0


# --- timeouts, memory, bad lengths ------------------------------------------------------------

def test_rfc792_reassembly_timeout_sends_time_exceeded_ipv4(pair: StackPair) -> None:
    rx = receiver(pair, 4)
    whole = udp_payload(4, b"t" * 2000)
    first = fragment(pair, 4, whole, 0, 1000, 81)
    inject(pair.link_b, first)
    record(pair)
    pair.run(TIMEOUT - 1.0)
    assert frames(pair.link_b, ICMP) == []
    pair.run(2.0)
    assert drain(rx) == []
    assert pair.b.stats["ipv4.drop.reassembly_timeout"] == 1
    (error,) = frames(pair.link_b, ICMP)
    assert (error[ICMP].type, error[ICMP].code) == (11, 1)
    assert (error[IP].src, error[IP].dst) == ("10.0.0.2", "10.0.0.1")
    # RFC 792: the internet header and the first 64 bits of the original datagram
    quoted = bytes(error[ICMP].payload)
    assert quoted[:28] == bytes(first[IP])[:28]
    assert error[IPerror].id == 81 and error[UDPerror].dport == 5000


def test_rfc8200_4_5_reassembly_timeout_sends_time_exceeded_ipv6(pair: StackPair) -> None:
    whole = udp_payload(6, b"t" * 2000)
    first = fragment(pair, 6, whole, 0, 1000, 82)
    inject(pair.link_b, first)
    record(pair)
    pair.run(TIMEOUT6 - 1.0)
    assert pair.b.stats["ipv6.drop.reassembly_timeout"] == 0
    pair.run(2.0)
    assert pair.b.stats["ipv6.drop.reassembly_timeout"] == 1
    (error,) = frames(pair.link_b, ICMPv6TimeExceeded)
    assert error[ICMPv6TimeExceeded].code == 1
    assert (error[IPv6].src, error[IPv6].dst) == ("fd00::2", "fd00::1")
    # the invoking packet is quoted as it was: fixed header, fragment header, then UDP
    quoted = bytes(error[ICMPv6TimeExceeded].payload)
    original = bytes(first[IPv6])
    assert quoted == original[:len(quoted)]
    assert len(quoted) >= 40 + 8 + 8
    inner = error[IPerror6]
    assert inner.nh == 44
    assert inner[IPv6ExtHdrFragment].offset == 0 and inner[IPv6ExtHdrFragment].id == 82


@pytest.mark.parametrize("version", [4, 6])
def test_timeout_without_the_first_fragment_sends_nothing(pair: StackPair,
                                                          version: int) -> None:
    whole = udp_payload(version, b"t" * 2000)
    inject(pair.link_b, fragment(pair, version, whole, 1000, 1000, 83))
    record(pair)
    pair.run((TIMEOUT if version == 4 else TIMEOUT6) + 1.0)
    assert pair.b.stats[f"ipv{version}.drop.reassembly_timeout"] == 1
    assert frames(pair.link_b, ICMP) == frames(pair.link_b, ICMPv6TimeExceeded) == []


@pytest.mark.parametrize("version", [4, 6])
def test_reassembly_memory_cap_evicts_the_oldest(version: int) -> None:
    pair = make_pair(options=StackOptions(reassembly_memory=2500))
    rx = receiver(pair, version)
    datagrams = {ident: udp_payload(version, bytes([ident]) * 1500) for ident in (1, 2, 3)}
    for ident, whole in datagrams.items():
        inject(pair.link_b, fragment(pair, version, whole, 0, 1000, ident))
    pair.run(0.01)
    assert pair.b.stats[f"ipv{version}.drop.reassembly_memory"] == 1  # datagram 1
    # a fragment that completes a datagram frees memory: it evicts nobody on its way
    for ident in (2, 3):
        inject(pair.link_b, fragment(pair, version, datagrams[ident], 1000, 1000, ident))
    pair.run(0.01)
    assert drain(rx) == [bytes([2]) * 1500, bytes([3]) * 1500]
    assert pair.b.stats[f"ipv{version}.drop.reassembly_memory"] == 1
    inject(pair.link_b, fragment(pair, version, datagrams[1], 1000, 1000, 1))
    pair.run(0.01)
    assert drain(rx) == []  # the evicted datagram's head is gone


@pytest.mark.parametrize("version", [4, 6])
def test_bad_fragment_lengths_are_dropped(pair: StackPair, version: int) -> None:
    rx = receiver(pair, version)
    whole = udp_payload(version, b"b" * 3000)
    # a non-final fragment whose length is not a multiple of 8
    inject(pair.link_b, fragment(pair, version, whole, 0, 1001, 90, more=True))
    # a fragment that would end past 65535 bytes
    inject(pair.link_b, fragment(pair, version, b"x" * 70000, 65528, 16, 91, more=False))
    # two different ends for one datagram
    inject(pair.link_b, fragment(pair, version, whole, 2000, 1008, 92, more=False))
    inject(pair.link_b, fragment(pair, version, whole, 1000, 1000, 92, more=False))
    # a middle fragment past the known end
    inject(pair.link_b, fragment(pair, version, whole, 1000, 1000, 93, more=False))
    inject(pair.link_b, fragment(pair, version, whole, 2000, 1000, 93, more=True))
    pair.run(0.01)
    assert pair.b.stats[f"ipv{version}.drop.bad_fragment"] == 4
    assert drain(rx) == []


def test_rfc8200_4_5_bad_fragment_lengths_get_a_parameter_problem(pair: StackPair) -> None:
    whole = udp_payload(6, b"b" * 3000)
    record(pair)
    inject(pair.link_b, fragment(pair, 6, whole, 0, 1001, 94, more=True))
    inject(pair.link_b, fragment(pair, 6, b"x" * 70000, 65528, 16, 95, more=False))
    pair.run(0.01)
    problems = frames(pair.link_b, ICMPv6ParamProblem)
    assert [(p[ICMPv6ParamProblem].code, p[ICMPv6ParamProblem].ptr) for p in problems] == [
        (0, 4),  # the Payload Length field
        (0, 42),  # the Fragment Offset field
    ]
