# SPDX-License-Identifier: MIT
"""ICMP errors about reassembled datagrams (RFC 8200 4.5, RFC 4443 3.4, RFC 792): the
quote is the reassembled datagram, and a Parameter Problem's pointer is an offset into
that quote (the Next Header field that named the unknown protocol)."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import ICMPv6ParamProblem, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment
from scapy.packet import Packet, Raw

from tests.unit.stackframes import a_to_b, frames, inject, record
from ustack.testing.pair import StackPair
from ustack.wire import checksum

UNKNOWN = 253  # RFC 3692 experimental: nobody handles it


def fragments6(pair: StackPair, payload: bytes, nh: int, ident: int,
               size: int = 1000) -> list[Packet]:
    out = []
    for offset in range(0, len(payload), size):
        piece = payload[offset:offset + size]
        more = offset + size < len(payload)
        out.append(a_to_b(pair) / IPv6(src="fd00::1", dst="fd00::2")
                   / IPv6ExtHdrFragment(nh=nh, offset=offset // 8, m=int(more), id=ident)
                   / Raw(piece))
    return out


def parameter_problems(pair: StackPair) -> list[Packet]:
    return frames(pair.link_b, ICMPv6ParamProblem)


def test_rfc4443_3_4_pointer_into_a_reassembled_packet_names_the_next_header(
        pair: StackPair) -> None:
    payload = bytes(range(256)) * 8  # 2048 bytes of an unknown protocol
    record(pair)
    for frag in fragments6(pair, payload, UNKNOWN, 0x1234):
        inject(pair.link_b, frag)
    pair.run(0.01)
    (error,) = parameter_problems(pair)
    problem = error[ICMPv6ParamProblem]
    assert problem.code == 1
    # the fixed header's Next Header field (now naming protocol 253), not 40 + 6
    assert problem.ptr == 6
    quoted = bytes(problem.payload)
    assert quoted[6] == UNKNOWN and quoted[:4] == bytes(IPv6())[:4]
    assert int.from_bytes(quoted[4:6], "big") == len(payload)  # the whole's length
    assert quoted[40:] == payload[:len(quoted) - 40]


def test_pointer_after_reassembly_names_the_last_extension_header(pair: StackPair) -> None:
    inner = bytes(IPv6ExtHdrDestOpt(nh=UNKNOWN)) + bytes(range(256)) * 8
    record(pair)
    for frag in fragments6(pair, inner, 60, 0x4321):  # 60: destination options
        inject(pair.link_b, frag)
    pair.run(0.01)
    (error,) = parameter_problems(pair)
    assert error[ICMPv6ParamProblem].ptr == 40  # that header's Next Header field
    assert bytes(error[ICMPv6ParamProblem].payload)[40:48] == inner[:8]


def test_pointer_for_an_atomic_fragment_names_the_fragment_header(pair: StackPair) -> None:
    record(pair)
    inject(pair.link_b, a_to_b(pair) / IPv6(src="fd00::1", dst="fd00::2")
           / IPv6ExtHdrFragment(nh=UNKNOWN, offset=0, m=0, id=7) / Raw(b"?" * 16))
    pair.run(0.01)
    (error,) = parameter_problems(pair)
    assert error[ICMPv6ParamProblem].ptr == 40  # its Next Header field, RFC 6946 packet


def test_icmpv4_error_about_a_reassembled_datagram_quotes_the_whole_header(
        pair: StackPair) -> None:
    """RFC 792 quotes "the internet header" of the datagram; after reassembly that is the
    whole datagram's (Linux ip_frag_reasm): its total length, no MF, a valid checksum."""
    data = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=4000, dport=9999)
                 / (b"r" * 2000))[20:]  # nobody on port 9999
    record(pair)
    for offset in range(0, len(data), 1000):
        more = offset + 1000 < len(data)
        inject(pair.link_b, a_to_b(pair) / IP(src="10.0.0.1", dst="10.0.0.2", id=77, proto=17,
                                               flags="MF" if more else 0, frag=offset // 8)
               / Raw(data[offset:offset + 1000]))
    pair.run(0.01)
    errors = [f for f in frames(pair.link_b, ICMP) if f[ICMP].type == 3]
    assert len(errors) == 1
    error: Packet = errors[0]
    assert error[ICMP].code == 3
    quoted = bytes(error[ICMP].payload)
    header = quoted[:20]
    assert int.from_bytes(header[2:4], "big") == 20 + len(data)
    assert int.from_bytes(header[6:8], "big") & 0x3FFF == 0  # no MF, no offset
    assert checksum.checksum(header) == 0  # recomputed
    assert error[IPerror].id == 77 and error[UDPerror].dport == 9999
    assert quoted[20:] == data[:len(quoted) - 20]

