# SPDX-License-Identifier: MIT
"""Build-then-parse properties: Ethernet (+802.1Q), ARP, ICMPv4, ICMPv6, UDP, pcap.

IPv4/IPv6 are in test_wire_ip.py, TCP in test_wire_tcp.py, NDP in test_wire_ndp.py.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.wire_reference import naive_checksum, naive_sum, pseudo4, pseudo6
from ustack.wire import DropReason, ParseError, arp, ethernet, icmp4, icmp6, pcap, udp
from ustack.wire.proto import EtherType, IPProto

mac = st.binary(min_size=6, max_size=6)
addr4 = st.binary(min_size=4, max_size=4)
addr6 = st.binary(min_size=16, max_size=16)
u16 = st.integers(min_value=0, max_value=0xFFFF)
untagged_type = u16.filter(lambda t: t not in (EtherType.VLAN, EtherType.QINQ))


def reason_of(fn: Callable[..., object], *args: object, **kwargs: object) -> DropReason:
    with pytest.raises(ParseError) as info:
        fn(*args, **kwargs)
    return info.value.reason


# --- Ethernet ---------------------------------------------------------------------------

@given(mac, mac, untagged_type, st.binary(max_size=64))
def test_ethernet_roundtrip(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> None:
    frame = ethernet.build(dst, src, ethertype) + payload
    assert frame[:14] == dst + src + struct.pack("!H", ethertype)
    hdr = ethernet.parse(frame)
    assert hdr == ethernet.EthernetHeader(dst, src, ethertype, 14)
    assert frame[hdr.length:] == payload


@given(mac, mac, untagged_type, st.integers(min_value=0, max_value=20))
def test_ethernet_build_into_at_offset(dst: bytes, src: bytes, ethertype: int,
                                       offset: int) -> None:
    buf = bytearray(b"\xaa" * (offset + 14 + 3))
    ethernet.build_into(buf, offset, dst, src, ethertype)
    assert buf[:offset] == b"\xaa" * offset
    assert buf[offset + 14:] == b"\xaa" * 3
    assert ethernet.parse(memoryview(buf)[offset:]) == (dst, src, ethertype, 14)


@given(mac, mac, st.lists(st.tuples(st.sampled_from([EtherType.VLAN, EtherType.QINQ]), u16),
                          min_size=1, max_size=2), untagged_type, st.binary(max_size=32))
def test_ethernet_vlan_tags_are_skipped(dst: bytes, src: bytes, tags: list[tuple[int, int]],
                                        inner: int, payload: bytes) -> None:
    """802.1Q / 802.1ad: one or two tags between the addresses and the real EtherType."""
    frame = dst + src
    for tpid, tci in tags:
        frame += struct.pack("!HH", tpid, tci)
    frame += struct.pack("!H", inner) + payload
    hdr = ethernet.parse(frame)
    assert hdr.ethertype == inner
    assert hdr.length == 14 + 4 * len(tags)
    assert frame[hdr.length:] == payload
    assert (hdr.dst, hdr.src) == (dst, src)


def test_ethernet_three_tags_stop_after_two() -> None:
    frame = b"\x02" * 12 + bytes.fromhex("88a80001" "81000002" "81000003" "0800")
    hdr = ethernet.parse(frame)
    assert (hdr.ethertype, hdr.length) == (EtherType.VLAN, 22)


@given(st.binary(max_size=13))
def test_ethernet_short_frame_is_truncated(data: bytes) -> None:
    assert reason_of(ethernet.parse, data) is DropReason.TRUNCATED


@pytest.mark.parametrize("cut", [14, 15, 17])
def test_ethernet_truncated_vlan_tag(cut: int) -> None:
    frame = b"\x02" * 12 + bytes.fromhex("8100000a0800")
    assert reason_of(ethernet.parse, frame[:cut]) is DropReason.TRUNCATED
    assert ethernet.parse(frame).length == 18


@given(mac)
def test_mac_text_roundtrip_and_group_bit(address: bytes) -> None:
    text = ethernet.format_mac(address)
    assert len(text) == 17
    assert ethernet.parse_mac(text) == address
    assert ethernet.is_multicast(address) == bool(address[0] & 1)


@given(addr4, addr6)
def test_multicast_macs(group4: bytes, group6: bytes) -> None:
    m4 = ethernet.ipv4_multicast_mac(group4)
    assert m4[:3] == b"\x01\x00\x5e" and m4[3] == group4[1] & 0x7F and m4[4:] == group4[2:]
    m6 = ethernet.ipv6_multicast_mac(group6)
    assert m6 == b"\x33\x33" + group6[12:]
    assert ethernet.is_multicast(m4) and ethernet.is_multicast(m6)


# --- ARP --------------------------------------------------------------------------------

arp_packets = st.builds(arp.ARPPacket, st.sampled_from([arp.OP_REQUEST, arp.OP_REPLY]),
                        mac, addr4, mac, addr4)


@given(arp_packets, st.binary(max_size=18))
def test_arp_roundtrip(packet: arp.ARPPacket, padding: bytes) -> None:
    data = arp.build(packet)
    assert len(data) == 28
    assert data[:8] == struct.pack("!HHBBH", 1, 0x0800, 6, 4, packet.op)
    assert data[8:] == (packet.sender_mac + packet.sender_ip + packet.target_mac
                        + packet.target_ip)
    assert arp.parse(data + padding) == packet  # Ethernet minimum-size padding is ignored


@given(arp_packets, st.integers(min_value=0, max_value=27))
def test_arp_truncated(packet: arp.ARPPacket, cut: int) -> None:
    assert reason_of(arp.parse, arp.build(packet)[:cut]) is DropReason.TRUNCATED


@pytest.mark.parametrize(("offset", "fmt", "value"), [
    (0, "!H", 6),        # hardware type IEEE 802 instead of Ethernet
    (2, "!H", 0x86DD),   # protocol type
    (4, "!B", 8),        # hardware length
    (5, "!B", 16),       # protocol length
    (6, "!H", 3),        # RARP request
    (6, "!H", 0),
])
def test_arp_not_ethernet_ipv4_or_bad_op(offset: int, fmt: str, value: int) -> None:
    data = bytearray(arp.build(arp.ARPPacket(1, b"\x02" * 6, b"\x0a" * 4, bytes(6), b"\x0b" * 4)))
    struct.pack_into(fmt, data, offset, value)
    assert reason_of(arp.parse, data) is DropReason.BAD_MESSAGE


# --- ICMPv4 -----------------------------------------------------------------------------

@given(st.integers(0, 255), st.integers(0, 255), u16, u16, st.binary(max_size=200))
def test_icmp4_roundtrip(kind: int, code: int, hi: int, lo: int, body: bytes) -> None:
    msg = icmp4.build(kind, code, hi, lo, body)
    assert msg[:2] == bytes((kind, code)) and msg[4:8] == struct.pack("!HH", hi, lo)
    assert msg[8:] == body
    zeroed = msg[:2] + b"\x00\x00" + msg[4:]
    assert struct.unpack("!H", msg[2:4])[0] == naive_checksum(zeroed)
    assert icmp4.parse(msg) == icmp4.ICMPv4Header(kind, code, hi, lo)


@given(st.binary(min_size=8, max_size=100), st.data())
def test_icmp4_corruption_is_a_bad_checksum(body: bytes, data: st.DataObject) -> None:
    msg = bytearray(icmp4.build(icmp4.ECHO_REQUEST, 0, 1, 2, body))
    bit = data.draw(st.integers(0, len(msg) * 8 - 1))
    msg[bit // 8] ^= 0x80 >> (bit % 8)
    assert reason_of(icmp4.parse, msg) is DropReason.BAD_CHECKSUM
    assert icmp4.parse(msg, verify_checksum=False).rest_lo == struct.unpack_from("!H", msg, 6)[0]


@given(st.binary(max_size=7))
def test_icmp4_truncated(data: bytes) -> None:
    assert reason_of(icmp4.parse, data) is DropReason.TRUNCATED


# --- ICMPv6 -----------------------------------------------------------------------------

@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFFFFFF),
       st.binary(max_size=200), addr6, addr6)
def test_icmp6_roundtrip(kind: int, code: int, rest: int, body: bytes, src: bytes,
                         dst: bytes) -> None:
    msg = icmp6.build(kind, code, rest, body, src, dst)
    assert msg[:2] == bytes((kind, code)) and msg[4:8] == struct.pack("!I", rest)
    assert msg[8:] == body
    zeroed = msg[:2] + b"\x00\x00" + msg[4:]
    pseudo = pseudo6(src, dst, IPProto.ICMPV6, len(msg))
    assert struct.unpack("!H", msg[2:4])[0] == naive_checksum(pseudo + zeroed)
    hdr = icmp6.parse(msg, src, dst)
    assert hdr == icmp6.ICMPv6Header(kind, code, rest)
    assert hdr.is_error == (kind < 128)


@given(st.binary(max_size=64), addr6, addr6, st.integers(0, 255))
def test_icmp6_checksum_covers_the_pseudo_header(body: bytes, src: bytes, dst: bytes,
                                                 bit: int) -> None:
    msg = icmp6.build(icmp6.ECHO_REQUEST, 0, 0x10002, body, src, dst)
    other = bytearray(src + dst)
    other[bit // 8] ^= 0x80 >> (bit % 8)
    assert reason_of(icmp6.parse, msg, bytes(other[:16]), bytes(other[16:])) \
        is DropReason.BAD_CHECKSUM
    assert icmp6.parse(msg, bytes(other[:16]), bytes(other[16:]), verify_checksum=False).rest \
        == 0x10002


@given(st.binary(max_size=7))
def test_icmp6_truncated(data: bytes) -> None:
    assert reason_of(icmp6.parse, data, bytes(16), bytes(16)) is DropReason.TRUNCATED


# --- UDP --------------------------------------------------------------------------------

addr_pairs = st.one_of(st.tuples(addr4, addr4), st.tuples(addr6, addr6))


@given(addr_pairs, u16, u16, st.binary(max_size=300), st.binary(max_size=10))
def test_udp_roundtrip(addrs: tuple[bytes, bytes], sport: int, dport: int, payload: bytes,
                       trailer: bytes) -> None:
    src, dst = addrs
    header = udp.build_header(sport, dport, payload, src, dst)
    csum = struct.unpack("!H", header[6:8])[0]
    assert csum != 0  # RFC 768: a computed zero is sent as all ones
    pseudo = (pseudo4 if len(src) == 4 else pseudo6)(src, dst, IPProto.UDP, 8 + len(payload))
    assert naive_sum(pseudo + header + payload) == 0xFFFF
    # bytes past the UDP length (an IP payload longer than the datagram) are not summed
    parsed = udp.parse(header + payload + trailer, src, dst)
    assert parsed == udp.UDPHeader(sport, dport, 8 + len(payload), csum)


@given(addr_pairs, st.binary(max_size=100))
def test_udp_computed_zero_checksum_is_sent_as_ffff(addrs: tuple[bytes, bytes],
                                                    payload: bytes) -> None:
    """Pick the last payload word so that the checksum comes out as zero (RFC 768)."""
    src, dst = addrs
    payload = payload + b"\x00" * (len(payload) % 2) + b"\x00\x00"
    pseudo = (pseudo4 if len(src) == 4 else pseudo6)(src, dst, IPProto.UDP, 8 + len(payload))
    header = struct.pack("!HHHH", 1234, 53, 8 + len(payload), 0)
    total = naive_sum(pseudo + header + payload)
    word = 0xFFFF - total
    payload = payload[:-2] + struct.pack("!H", word)
    assert naive_checksum(pseudo + header + payload) == 0
    built = udp.build_header(1234, 53, payload, src, dst)
    assert built[6:8] == b"\xff\xff"
    assert udp.parse(built + payload, src, dst).checksum == 0xFFFF


@given(u16, u16, st.binary(max_size=50))
def test_udp_zero_checksum_ipv4_only(sport: int, dport: int, payload: bytes) -> None:
    """RFC 768: zero means "no checksum" over IPv4; RFC 8200 8.1: invalid over IPv6."""
    v4 = udp.build_header(sport, dport, payload, b"\x0a\0\0\1", b"\x0a\0\0\2",
                          with_checksum=False)
    assert v4[6:8] == b"\x00\x00"
    assert udp.parse(v4 + payload, b"\x0a\0\0\1", b"\x0a\0\0\2").checksum == 0
    src6, dst6 = b"\xfd" + bytes(14) + b"\x01", b"\xfd" + bytes(14) + b"\x02"
    v6 = udp.build_header(sport, dport, payload, src6, dst6, with_checksum=False)
    assert reason_of(udp.parse, v6 + payload, src6, dst6) is DropReason.BAD_CHECKSUM


@given(addr_pairs, st.binary(min_size=1, max_size=50), st.data())
def test_udp_length_field_checks(addrs: tuple[bytes, bytes], payload: bytes,
                                 data: st.DataObject) -> None:
    src, dst = addrs
    datagram = bytearray(udp.build_header(7, 9, payload, src, dst) + payload)
    cut = data.draw(st.integers(8, len(datagram) - 1))
    assert reason_of(udp.parse, datagram[:cut], src, dst) is DropReason.BAD_LENGTH
    short = data.draw(st.integers(0, 7))
    struct.pack_into("!H", datagram, 4, short)
    assert reason_of(udp.parse, datagram, src, dst, verify_checksum=False) \
        is DropReason.BAD_LENGTH
    assert reason_of(udp.parse, bytes(datagram[:data.draw(st.integers(0, 7))]), src, dst) \
        is DropReason.TRUNCATED


@given(addr_pairs, st.binary(max_size=60), st.data())
def test_udp_any_bit_flip_is_caught(addrs: tuple[bytes, bytes], payload: bytes,
                                    data: st.DataObject) -> None:
    src, dst = addrs
    datagram = bytearray(udp.build_header(7, 9, payload, src, dst) + payload)
    # flip one bit anywhere except the length field (which has its own check)
    bit = data.draw(st.integers(0, len(datagram) * 8 - 1).filter(lambda b: not 32 <= b < 48))
    datagram[bit // 8] ^= 0x80 >> (bit % 8)
    if datagram[6:8] == b"\x00\x00" and len(src) == 4:
        return  # flipping 0x8000 -> 0x0000 in the checksum reads as "no checksum"
    assert reason_of(udp.parse, datagram, src, dst) is DropReason.BAD_CHECKSUM


# --- pcap -------------------------------------------------------------------------------

@given(st.lists(st.tuples(st.floats(0, 4e9, allow_nan=False), st.binary(max_size=100)),
                max_size=5), st.integers(1, 120))
def test_pcap_records(records: list[tuple[float, bytes]], snaplen: int) -> None:
    out = io.BytesIO()
    writer = pcap.PcapWriter(out, pcap.LINKTYPE_ETHERNET, snaplen)
    for when, frame in records:
        writer.write(when, frame)
    data = out.getvalue()
    magic, major, minor, zone, sigfigs, snap, link = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, zone, sigfigs, snap, link) == (
        0xA1B23C4D, 2, 4, 0, 0, snaplen, 1)
    offset = 24
    for when, frame in records:
        sec, nsec, caplen, origlen = struct.unpack_from("<IIII", data, offset)
        ns = int(when * 1e9)
        assert (sec, nsec) == (ns // 10**9, ns % 10**9)
        assert nsec < 10**9
        assert (caplen, origlen) == (min(len(frame), snaplen), len(frame))
        assert data[offset + 16:offset + 16 + caplen] == frame[:snaplen]
        offset += 16 + caplen
    assert offset == len(data)
