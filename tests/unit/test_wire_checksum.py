# SPDX-License-Identifier: MIT
"""The Internet checksum (RFC 1071) against a naive word-by-word reference."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.wire_reference import naive_checksum, naive_sum, pseudo4, pseudo6
from ustack.wire import checksum, tcp, udp
from ustack.wire.proto import IPProto

addr4 = st.binary(min_size=4, max_size=4)
addr6 = st.binary(min_size=16, max_size=16)


@given(st.binary(max_size=300))
def test_checksum_matches_naive_reference(data: bytes) -> None:
    assert checksum.checksum(data) == naive_checksum(data)
    assert checksum.checksum(bytearray(data)) == naive_checksum(data)
    assert checksum.checksum(memoryview(data)) == naive_checksum(data)


@given(st.binary(max_size=300))
def test_ones_sum_matches_naive_reference(data: bytes) -> None:
    assert checksum.ones_sum(data) == naive_sum(data)


@given(st.binary(min_size=1, max_size=301).filter(lambda b: len(b) % 2 == 1))
def test_odd_length_is_padded_with_a_zero_byte(data: bytes) -> None:
    assert checksum.checksum(data) == checksum.checksum(data + b"\x00")
    assert checksum.checksum(data) == naive_checksum(data)


@given(st.integers(min_value=0, max_value=200))
def test_all_zero_data_sums_to_zero_and_checksums_to_all_ones(n: int) -> None:
    assert checksum.ones_sum(bytes(n)) == 0
    assert checksum.checksum(bytes(n)) == 0xFFFF


def test_negative_zero_sum() -> None:
    # non-zero data whose one's-complement sum is "negative zero" (0xFFFF)
    assert checksum.ones_sum(b"\xff\xff") == 0xFFFF
    assert checksum.ones_sum(b"\x00\x01\xff\xfe") == 0xFFFF
    assert checksum.checksum(b"\x00\x01\xff\xfe") == 0x0000
    # RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2
    assert checksum.ones_sum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2
    assert checksum.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=0x3FFFF))
def test_initial_partial_sum_is_folded_in(data: bytes, initial: int) -> None:
    words = b""
    rest = initial
    while rest:
        words += struct.pack("!H", rest & 0xFFFF)
        rest >>= 16
    padded = data + b"\x00" * (len(data) % 2)
    assert checksum.checksum(data, initial) == naive_checksum(padded + words)


@given(st.binary(max_size=100).map(lambda b: b + b"\x00" * (len(b) % 2)), st.binary(max_size=100))
def test_combine_partial_sums(head: bytes, tail: bytes) -> None:
    combined = checksum.combine(checksum.ones_sum(head), checksum.ones_sum(tail))
    assert checksum.finish(combined) == naive_checksum(head + tail)


@given(st.binary(min_size=2, max_size=200), st.data())
def test_verify_accepts_own_checksum_and_detects_any_single_bit_flip(
        data: bytes, draw: st.DataObject) -> None:
    buf = bytearray(data + b"\x00" * (len(data) % 2) + b"\x00\x00")
    struct.pack_into("!H", buf, len(buf) - 2, checksum.checksum(buf))
    assert checksum.verify(buf)
    assert naive_sum(bytes(buf)) == 0xFFFF
    bit = draw.draw(st.integers(min_value=0, max_value=len(buf) * 8 - 1))
    buf[bit // 8] ^= 0x80 >> (bit % 8)
    assert not checksum.verify(buf)


@given(addr4, addr4, st.sampled_from([IPProto.TCP, IPProto.UDP, 0, 255]),
       st.integers(min_value=0, max_value=0xFFFF))
def test_ipv4_pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> None:
    got = checksum.pseudo_header_sum(src, dst, proto, length)
    assert got == naive_sum(pseudo4(src, dst, proto, length))


@given(addr6, addr6, st.sampled_from([IPProto.TCP, IPProto.UDP, IPProto.ICMPV6]),
       st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_ipv6_pseudo_header_sum_with_32_bit_length(src: bytes, dst: bytes, proto: int,
                                                    length: int) -> None:
    got = checksum.pseudo_header_sum(src, dst, proto, length)
    assert got == naive_sum(pseudo6(src, dst, proto, length))


@given(st.one_of(st.tuples(addr4, addr4), st.tuples(addr6, addr6)),
       st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=300))
def test_udp_checksum_is_over_the_pseudo_header(addrs: tuple[bytes, bytes], sport: int,
                                                dport: int, payload: bytes) -> None:
    src, dst = addrs
    header = udp.build_header(sport, dport, payload, src, dst)
    length = 8 + len(payload)
    pseudo = (pseudo4 if len(src) == 4 else pseudo6)(src, dst, IPProto.UDP, length)
    zeroed = header[:6] + b"\x00\x00"
    expected = naive_checksum(pseudo + zeroed + payload) or 0xFFFF
    assert struct.unpack("!H", header[6:8])[0] == expected


@given(st.one_of(st.tuples(addr4, addr4), st.tuples(addr6, addr6)),
       st.binary(max_size=40).map(lambda b: b[:len(b) // 4 * 4]), st.binary(max_size=300))
def test_tcp_fill_checksum_with_separate_payload(addrs: tuple[bytes, bytes], options: bytes,
                                                 payload: bytes) -> None:
    src, dst = addrs
    seg = bytearray(20 + len(options))
    tcp.build_header_into(seg, 0, src_port=1, dst_port=2, seq=3, ack=4, flags=tcp.ACK,
                          window=5, options=options)
    tcp.fill_checksum(seg, src, dst, payload)
    whole = bytes(seg) + payload
    pseudo = (pseudo4 if len(src) == 4 else pseudo6)(src, dst, IPProto.TCP, len(whole))
    zeroed = whole[:16] + b"\x00\x00" + whole[18:]
    assert struct.unpack_from("!H", seg, 16)[0] == naive_checksum(pseudo + zeroed)
    assert naive_sum(pseudo + whole) == 0xFFFF
