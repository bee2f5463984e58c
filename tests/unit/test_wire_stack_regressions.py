# SPDX-License-Identifier: MIT
"""Bugs the wire tests and the fuzzer found, checked end to end on a live stack.

Each test injects hand-made frames into stack b and looks at what b wrote back
(decoded by scapy) and at its counters.
"""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6ParamProblem, ICMPv6TimeExceeded
from scapy.layers.l2 import Ether

from tests.unit.wire_frames import eth, ext, ip4, ip6, udp_l4
from ustack.network.ipv6 import IPv6Protocol
from ustack.testing.pair import A4, A6, B4, B6, StackPair
from ustack.wire import icmp4, icmp6, ipv6, ndp
from ustack.wire.proto import EtherType, IPProto

a4, b4 = socket.inet_pton(socket.AF_INET, A4), socket.inet_pton(socket.AF_INET, B4)
a6, b6 = socket.inet_pton(socket.AF_INET6, A6), socket.inet_pton(socket.AF_INET6, B6)
UNKNOWN_OPTION_10 = bytes((0x9E, 2, 0xAB, 0xCD))  # action 10: discard, Parameter Problem


def written_by_b(pair: StackPair) -> list[Ether]:
    return [Ether(f) for f in pair.link_b.written or []]


def to_b(pair: StackPair, payload: bytes, ethertype: int) -> None:
    pair.link_b.inject(eth(payload, ethertype, pair.link_b.link_address,
                           pair.link_a.link_address))


@pytest.fixture
def recording(pair: StackPair) -> StackPair:
    pair.link_b.written = []
    return pair


# --- NDP options ------------------------------------------------------------------------

def router_advertisement(pair: StackPair, options: bytes) -> bytes:
    src = ipv6.link_local_from_mac(pair.link_a.link_address)
    msg = icmp6.build(icmp6.ROUTER_ADVERTISEMENT, 0,
                      ndp.router_advertisement_rest(64, False, False, 1800), bytes(8) + options,
                      src, ipv6.ALL_NODES)
    return ip6(IPProto.ICMPV6, msg, src, ipv6.ALL_NODES, hop_limit=255)


def test_ra_prefix_longer_than_128_bits_is_dropped_not_raised(recording: StackPair) -> None:
    """An on-link prefix of length 255 reached the route table, which raised ValueError
    (negative shift count) out of the receive path."""
    pair = recording
    info = ndp.PrefixInfo(bytes.fromhex("fd00000000000009") + bytes(8), 64, True, False,
                          3600, 1800)
    option = bytearray(ndp.prefix_option(info))
    option[2] = 255
    to_b(pair, router_advertisement(pair, bytes(option)), EtherType.IPV6)
    # RFC 4861 4.6.2: the bad prefix option is skipped, the rest of the RA is used
    assert pair.b.stats["ndp.option_ignored"] == 1
    assert pair.b.stats["ndp.rx_ra"] == 1
    assert all(e.prefix[:8] != bytes.fromhex("fd00000000000009")
               for e in pair.b.routes.entries())  # no on-link route from it


def test_rdnss_of_even_length_teaches_no_half_address(recording: StackPair) -> None:
    """RFC 8106 5.1: Length 1 + 2n. With Length 4 the second "address" was eight bytes
    of padding and eight of the next option."""
    pair = recording
    good = ndp.rdnss_option((a6,), 600)
    bad = bytes((ndp.OPT_RDNSS, 4)) + good[2:] + bytes(8)
    to_b(pair, router_advertisement(pair, bad + ndp.mtu_option(1400)), EtherType.IPV6)
    assert pair.b.stats["ndp.rx_ra"] == 1
    ipv6_protocol = pair.b.network_protocols[EtherType.IPV6]
    assert isinstance(ipv6_protocol, IPv6Protocol)
    assert ipv6_protocol.ndp.dns_servers == []
    to_b(pair, router_advertisement(pair, good), EtherType.IPV6)
    assert ipv6_protocol.ndp.dns_servers == [a6]


# --- what an ICMP error quotes ----------------------------------------------------------

def test_icmp4_error_quotes_the_datagram_not_the_link_padding(recording: StackPair) -> None:
    """RFC 792 / RFC 1812 4.3.2.3: the quote is the invoking datagram; the Ethernet
    minimum-size padding after it is not part of it."""
    pair = recording
    datagram = ip4(IPProto.UDP, udp_l4(1000, 9, b"ab", a4, b4), a4, b4)
    to_b(pair, datagram + b"\xee" * 16, EtherType.IPV4)
    pair.run(0.1)
    (error,) = [f for f in written_by_b(pair) if f.haslayer(ICMP)]
    assert (error[ICMP].type, error[ICMP].code) == (3, 3)
    assert bytes(error[ICMP].payload) == datagram


def test_icmp6_error_quotes_the_packet_not_the_link_padding(recording: StackPair) -> None:
    """RFC 4443 2.4 (c): as much of the invoking packet as fits; trailing link bytes
    past the Payload Length are not part of it."""
    pair = recording
    packet = ip6(IPProto.UDP, udp_l4(1000, 9, b"ab", a6, b6), a6, b6)
    to_b(pair, packet + b"\xee" * 16, EtherType.IPV6)
    pair.run(0.1)
    (error,) = [f for f in written_by_b(pair) if f.haslayer(ICMPv6DestUnreach)]
    assert bytes(error[ICMPv6DestUnreach].payload) == packet


# --- no ICMP errors about ICMP errors ---------------------------------------------------

@pytest.mark.parametrize(("kind", "answered"), [(icmp6.DEST_UNREACHABLE, False),
                                                (icmp6.ECHO_REQUEST, True)])
def test_no_parameter_problem_about_an_icmp6_error(recording: StackPair, kind: int,
                                                   answered: bool) -> None:
    """RFC 4443 2.4 (e.1): never an ICMPv6 error about an ICMPv6 error message, also when
    the error is found in an extension header before the ICMPv6 header (Linux looks
    past the extension headers, is_ineligible())."""
    pair = recording
    inner = ip6(IPProto.UDP, udp_l4(7, 9, b"x", b6, a6), b6, a6)
    msg = icmp6.build(kind, 0, 0, inner, a6, b6)
    to_b(pair, ip6(IPProto.IPV6_OPTS, ext(IPProto.ICMPV6, UNKNOWN_OPTION_10) + msg, a6, b6),
         EtherType.IPV6)
    pair.run(0.1)
    problems = [f for f in written_by_b(pair) if f.haslayer(ICMPv6ParamProblem)]
    assert len(problems) == int(answered)
    if answered:
        assert problems[0][ICMPv6ParamProblem].code == 2
        assert problems[0][ICMPv6ParamProblem].ptr == 42
    else:
        assert pair.b.stats["icmp6.error_suppressed"] == 1


@pytest.mark.parametrize(("kind", "answered"), [(icmp6.DEST_UNREACHABLE, False),
                                                (icmp6.ECHO_REQUEST, True)])
def test_no_reassembly_time_exceeded_about_an_icmp6_error(recording: StackPair, kind: int,
                                                          answered: bool) -> None:
    """RFC 4443 2.4 (e.1) for the Time Exceeded of RFC 8200 4.5: a first fragment of
    an ICMPv6 error whose other fragments never come gets no answer."""
    pair = recording
    inner = ip6(IPProto.UDP, udp_l4(7, 9, b"x" * 64, b6, a6), b6, a6)
    msg = icmp6.build(kind, 0, 0, inner, a6, b6)
    first = ipv6.build_fragment_header(IPProto.ICMPV6, 0, True, 0x77) + msg[:64]
    to_b(pair, ip6(IPProto.IPV6_FRAG, first, a6, b6), EtherType.IPV6)
    pair.run(70.0)
    exceeded = [f for f in written_by_b(pair) if f.haslayer(ICMPv6TimeExceeded)]
    assert pair.b.stats["ipv6.drop.reassembly_timeout"] == 1
    assert len(exceeded) == int(answered)
    if answered:
        assert exceeded[0][ICMPv6TimeExceeded].code == 1


@pytest.mark.parametrize(("kind", "answered"), [(icmp4.DEST_UNREACHABLE, False),
                                                (icmp4.ECHO_REQUEST, True)])
def test_no_reassembly_time_exceeded_about_an_icmp4_error(recording: StackPair, kind: int,
                                                          answered: bool) -> None:
    """RFC 1122 3.2.2: no ICMP error about an ICMP error message, the reassembly
    timeout's Time Exceeded (RFC 792, code 1) included."""
    pair = recording
    inner = ip4(IPProto.UDP, udp_l4(7, 9, b"x" * 64, b4, a4), b4, a4)
    msg = icmp4.build(kind, 3 if kind == icmp4.DEST_UNREACHABLE else 0, 0, 0, inner)
    to_b(pair, ip4(IPProto.ICMP, msg[:64], a4, b4, ident=0x99, more=True), EtherType.IPV4)
    pair.run(70.0)
    exceeded = [f for f in written_by_b(pair) if f.haslayer(ICMP) and f[ICMP].type == 11]
    assert pair.b.stats["ipv4.drop.reassembly_timeout"] == 1
    assert len(exceeded) == int(answered)
    if answered:
        assert exceeded[0][ICMP].code == 1
        assert exceeded[0][IP].dst == A4
