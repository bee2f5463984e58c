# SPDX-License-Identifier: MIT
"""DNS header and questions (RFC 1035 4.1): round trips, scapy both ways, name
compression (4.1.4) followed safely, and malformed input rejected with a reason."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR

from ustack.wire import DropReason, ParseError
from ustack.wire import dns as wire

u16 = st.integers(0, 0xFFFF)
label = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_", min_size=1, max_size=63)
names = st.lists(label, max_size=4).map(".".join).filter(lambda n: len(n) < 250)
questions = st.builds(wire.Question, names, u16, u16)
SCAPY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reason_of(data: bytes) -> DropReason:
    with pytest.raises(ParseError) as info:
        wire.parse(data)
    return info.value.reason


def header(qdcount: int = 1, ident: int = 7, flags: int = wire.RD) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qdcount, 0, 0, 0)


@given(u16, u16, st.lists(questions, max_size=3))
def test_build_then_parse_is_identity(ident: int, flags: int,
                                      qs: list[wire.Question]) -> None:
    data = wire.build_header(wire.Header(ident, flags, len(qs), 0, 0, 0)) + b"".join(
        wire.build_question(q) for q in qs)
    msg = wire.parse(data)
    assert msg.header == wire.Header(ident, flags, len(qs), 0, 0, 0)
    assert msg.questions == tuple(qs)
    assert msg.question_end == len(data)


def test_header_flags_rfc1035_4_1_1() -> None:
    head = wire.Header(1, wire.QR | (2 << 11) | wire.TC | wire.RCODE_NXDOMAIN, 0, 0, 0, 0)
    assert head.is_response and head.truncated
    assert (head.opcode, head.rcode) == (2, wire.RCODE_NXDOMAIN)


@SCAPY
@given(u16, questions)
def test_scapy_reads_our_query(ident: int, q: wire.Question) -> None:
    pkt = DNS(wire.build_query(ident, q))
    assert (pkt.id, pkt.rd, pkt.qr, pkt.qdcount) == (ident, 1, 0, 1)
    assert pkt.qd[0].qname.decode().rstrip(".") == q.name
    qd = pkt.qd[0]  # scapy reads the top bit of the class as mDNS "unicast response"
    assert (qd.qtype, qd.unicastresponse << 15 | qd.qclass) == (q.qtype, q.qclass)


def test_we_read_a_compressed_scapy_answer() -> None:
    pkt = DNS(id=0x4242, qr=1, rd=1, ra=1, qd=DNSQR(qname="www.example.org", qtype="AAAA"),
              an=DNSRR(rrname="www.example.org", type="AAAA", rdata="2001:db8::1"))
    data = bytes(pkt.compress())  # type: ignore[no-untyped-call]  # scapy's DNS.compress is unannotated
    assert b"\xc0\x0c" in data  # the answer's owner name points at the question's
    msg = wire.parse(data)
    assert msg.header.id == 0x4242 and msg.header.is_response
    assert msg.questions == (wire.Question("www.example.org", wire.TYPE_AAAA, wire.CLASS_IN),)
    assert msg.header.ancount == 1


def test_compression_pointer_is_followed() -> None:
    # question 1: "example.org"; question 2: "www" + pointer to offset 12
    first = b"\x07example\x03org\x00" + struct.pack("!HH", 1, 1)
    second = b"\x03www\xc0\x0c" + struct.pack("!HH", 28, 1)
    msg = wire.parse(header(2) + first + second)
    assert [q.name for q in msg.questions] == ["example.org", "www.example.org"]
    assert msg.question_end == 12 + len(first) + len(second)


@pytest.mark.parametrize("name", [
    b"\xc0\x0c",  # points at itself
    b"\x03www\xc0\x11",  # points forward (at its own pointer)
    b"\xc0\x20",  # points past itself
])
def test_pointer_loops_are_rejected(name: bytes) -> None:
    assert reason_of(header() + name + struct.pack("!HH", 1, 1)) is DropReason.BAD_MESSAGE


def test_pointer_chain_is_bounded() -> None:
    # Each pointer points at the one before it: always backwards, but more jumps than
    # allowed. The chain hides in label bytes of question 2, which then points at its end.
    data = bytearray(header(qdcount=2) + b"\x00" + struct.pack("!HH", 1, 1))
    previous = 12  # question 1's root label
    for _label in range(3):
        data.append(62)
        for _ in range(31):
            here = len(data)
            data += struct.pack("!H", 0xC000 | previous)
            previous = here
    data += struct.pack("!H", 0xC000 | previous) + struct.pack("!HH", 1, 1)
    assert wire.MAX_POINTERS < 93
    assert reason_of(bytes(data)) is DropReason.BAD_MESSAGE


def test_name_longer_than_255_is_rejected() -> None:
    long_name = (b"\x3f" + b"a" * 63) * 4 + b"\x00"  # 257 octets
    assert reason_of(header() + long_name + struct.pack("!HH", 1, 1)) is DropReason.BAD_MESSAGE


@pytest.mark.parametrize("data,reason", [
    (b"\x00" * 11, DropReason.TRUNCATED),
    (header() + b"\x03ww", DropReason.TRUNCATED),
    (header() + b"\x03www", DropReason.TRUNCATED),  # no root label
    (header() + b"\x00\x00\x01", DropReason.TRUNCATED),  # qtype/qclass cut short
    (header() + b"\xc0", DropReason.TRUNCATED),
    (header() + b"\x40abc\x00\x00\x01\x00\x01", DropReason.BAD_MESSAGE),  # extended label
    (header(qdcount=2) + b"\x00\x00\x01\x00\x01", DropReason.TRUNCATED),
])
def test_malformed(data: bytes, reason: DropReason) -> None:
    assert reason_of(data) is reason


def test_odd_bytes_in_labels_are_escaped() -> None:
    data = header() + b"\x03a.b\x00" + struct.pack("!HH", 1, 1)
    assert wire.parse(data).questions[0].name == "a\\046b"


def test_encode_name_limits() -> None:
    assert wire.encode_name("") == b"\x00"
    assert wire.encode_name("a.b.") == b"\x01a\x01b\x00"
    with pytest.raises(ValueError):
        wire.encode_name("a" * 64)
    with pytest.raises(ValueError):
        wire.encode_name("a..b")
    with pytest.raises(ValueError):
        wire.encode_name(".".join(["a" * 63] * 4))


def test_error_response_keeps_id_rd_and_question() -> None:
    q = wire.Question("example.org", wire.TYPE_A, wire.CLASS_IN)
    query = wire.build_query(0x1234, q) + b"\x00\x00\x29\x10\x00"  # trailing EDNS-ish bytes
    answer = wire.error_response(query, wire.parse(query), wire.RCODE_SERVFAIL)
    msg = wire.parse(answer)
    assert msg.header == wire.Header(0x1234, wire.QR | wire.RD | wire.RA | wire.RCODE_SERVFAIL,
                                     1, 0, 0, 0)
    assert msg.questions == (q,)
    assert len(answer) == msg.question_end  # nothing after the question


def test_with_id() -> None:
    query = wire.build_query(1, wire.Question("a", 1, 1))
    assert wire.with_id(query, 0xBEEF)[:2] == b"\xbe\xef"
    assert wire.with_id(query, 0xBEEF)[2:] == query[2:]
