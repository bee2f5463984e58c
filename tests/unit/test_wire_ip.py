# SPDX-License-Identifier: MIT
"""IPv4 (RFC 791) and IPv6 (RFC 8200) headers, build then parse; IPv6 extension chains."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.wire_reference import naive_checksum, naive_sum
from ustack.wire import DropReason, ParseError, ipv4, ipv6
from ustack.wire.proto import IPProto

addr4 = st.binary(min_size=4, max_size=4)
addr6 = st.binary(min_size=16, max_size=16)
u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)


def reason_of(fn: Callable[..., object], *args: object, **kwargs: object) -> DropReason:
    with pytest.raises(ParseError) as info:
        fn(*args, **kwargs)
    return info.value.reason


# --- IPv4 -------------------------------------------------------------------------------

@st.composite
def ipv4_fields(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "protocol": draw(u8), "src": draw(addr4), "dst": draw(addr4), "ttl": draw(u8),
        "tos": draw(u8), "ident": draw(u16), "dont_fragment": draw(st.booleans()),
        "more_fragments": draw(st.booleans()),
        "fragment_offset": draw(st.integers(0, 0x1FFF)) * 8,
    }


@given(ipv4_fields(), st.binary(max_size=100), st.binary(max_size=20))
def test_ipv4_roundtrip(fields: dict[str, Any], payload: bytes,
                        padding: bytes) -> None:
    total = 20 + len(payload)
    header = ipv4.build(total_length=total, **fields)
    assert len(header) == 20 and header[0] == 0x45
    assert naive_sum(header) == 0xFFFF  # the header checksum is right
    flags = (0x4000 if fields["dont_fragment"] else 0) | (0x2000 if fields["more_fragments"]
                                                          else 0)
    assert struct.unpack_from("!H", header, 6)[0] == flags | int(fields["fragment_offset"]) // 8
    hdr = ipv4.parse(header + payload + padding)  # link padding past total_length is fine
    assert hdr == ipv4.IPv4Header(
        20, fields["tos"], total, fields["ident"], fields["dont_fragment"],
        fields["more_fragments"], fields["fragment_offset"], fields["ttl"], fields["protocol"],
        fields["src"], fields["dst"])
    assert hdr.is_fragment == (bool(fields["more_fragments"]) or fields["fragment_offset"] != 0)


def with_options(header: bytes, options: bytes, payload: bytes) -> bytes:
    """Splice IP options into a 20-byte header, fixing IHL, total length and checksum."""
    assert len(options) % 4 == 0
    buf = bytearray(header + options)
    buf[0] = 0x40 | (len(buf) // 4)
    struct.pack_into("!HH", buf, 2, len(buf) + len(payload), struct.unpack_from("!H", buf, 4)[0])
    struct.pack_into("!H", buf, 10, 0)
    struct.pack_into("!H", buf, 10, naive_checksum(bytes(buf)))
    return bytes(buf) + payload


@given(ipv4_fields(), st.integers(1, 10).flatmap(lambda n: st.binary(min_size=4 * n,
                                                                     max_size=4 * n)),
       st.binary(max_size=40))
def test_ipv4_options_are_skipped_by_ihl(fields: dict[str, Any],
                                         options: bytes, payload: bytes) -> None:
    """RFC 791: the options, whatever they hold, end where IHL says; the payload follows."""
    packet = with_options(ipv4.build(total_length=0, **fields), options, payload)
    hdr = ipv4.parse(packet)
    assert hdr.header_length == 20 + len(options)
    assert hdr.total_length == len(packet)
    assert packet[hdr.header_length:hdr.total_length] == payload
    assert (hdr.src, hdr.dst, hdr.protocol) == (fields["src"], fields["dst"], fields["protocol"])


# The payload stays under 40 bytes so that some IHL up to 15 reaches past the datagram.
@given(ipv4_fields(), st.binary(max_size=36), st.data())
def test_ipv4_header_errors(fields: dict[str, Any], payload: bytes,
                            data: st.DataObject) -> None:
    packet = ipv4.build(total_length=20 + len(payload), **fields) + payload

    def patched(offset: int, fmt: str, value: int, fix: bool = True) -> bytes:
        buf = bytearray(packet)
        struct.pack_into(fmt, buf, offset, value)
        if fix:
            hlen = min(max((buf[0] & 15) * 4, 20), 60)
            struct.pack_into("!H", buf, 10, 0)
            struct.pack_into("!H", buf, 10, naive_checksum(bytes(buf[:hlen].ljust(hlen, b"\0"))))
        return bytes(buf)

    version = data.draw(st.integers(0, 15).filter(lambda v: v != 4))
    assert reason_of(ipv4.parse, patched(0, "!B", version << 4 | 5)) is DropReason.BAD_VERSION
    ihl = data.draw(st.integers(0, 4))
    assert reason_of(ipv4.parse, patched(0, "!B", 0x40 | ihl)) is DropReason.BAD_HEADER_LENGTH
    big_ihl = data.draw(st.integers(6 + len(payload) // 4, 15))
    assert reason_of(ipv4.parse, patched(0, "!B", 0x40 | big_ihl)) is DropReason.BAD_LENGTH
    too_long = data.draw(st.integers(21 + len(payload), 0xFFFF))
    assert reason_of(ipv4.parse, patched(2, "!H", too_long)) is DropReason.BAD_LENGTH
    quoted = ipv4.parse(patched(2, "!H", too_long), quoted=True)  # ICMP quotes are truncated
    assert quoted.total_length == too_long
    too_short = data.draw(st.integers(0, 19))
    assert reason_of(ipv4.parse, patched(2, "!H", too_short)) is DropReason.BAD_LENGTH
    frag = struct.unpack_from("!H", packet, 6)[0]
    assert reason_of(ipv4.parse, patched(6, "!H", frag | 0x8000)) is DropReason.BAD_FRAGMENT
    bad_sum = struct.unpack_from("!H", packet, 10)[0] ^ (1 << data.draw(st.integers(0, 15)))
    assert reason_of(ipv4.parse, patched(10, "!H", bad_sum, fix=False)) \
        is DropReason.BAD_CHECKSUM
    assert ipv4.parse(patched(10, "!H", bad_sum, fix=False), verify_checksum=False).ttl \
        == fields["ttl"]
    assert reason_of(ipv4.parse, packet[:data.draw(st.integers(0, 19))]) is DropReason.TRUNCATED


@given(addr4)
def test_ipv4_address_classes(addr: bytes) -> None:
    assert ipv4.is_multicast(addr) == (224 <= addr[0] <= 239)
    assert ipv4.is_loopback(addr) == (addr[0] == 127)
    assert ipv4.is_unspecified(addr) == (addr == b"\0\0\0\0")


# --- IPv6 fixed header ------------------------------------------------------------------

@given(u8, st.integers(0, 0xFFFFF), st.integers(1, 0xFFFF), u8, u8, addr6, addr6)
def test_ipv6_roundtrip(tc: int, flow: int, plen: int, nxt: int, hlim: int, src: bytes,
                        dst: bytes) -> None:
    header = ipv6.build(payload_length=plen, next_header=nxt, src=src, dst=dst,
                        hop_limit=hlim, traffic_class=tc, flow_label=flow)
    assert len(header) == 40
    assert struct.unpack_from("!I", header)[0] == (6 << 28) | (tc << 20) | flow
    packet = header + bytes(plen) + b"pad"
    assert ipv6.parse(packet) == ipv6.IPv6Header(tc, flow, plen, nxt, hlim, src, dst)


@given(st.integers(1, 200), st.data())
def test_ipv6_header_errors(plen: int, data: st.DataObject) -> None:
    header = bytearray(ipv6.build(payload_length=plen, next_header=17, src=bytes(16),
                                  dst=bytes(16)))
    assert reason_of(ipv6.parse, bytes(header[:data.draw(st.integers(0, 39))])) \
        is DropReason.TRUNCATED
    short = data.draw(st.integers(0, plen - 1))
    assert reason_of(ipv6.parse, bytes(header) + bytes(short)) is DropReason.BAD_LENGTH
    header[0] = data.draw(st.integers(0, 15).filter(lambda v: v != 6)) << 4
    assert reason_of(ipv6.parse, bytes(header) + bytes(plen)) is DropReason.BAD_VERSION


@pytest.mark.parametrize("nxt", [IPProto.UDP, IPProto.HOPOPT])
def test_ipv6_zero_payload_length(nxt: int) -> None:
    """Zero is only valid for a jumbogram (RFC 2675), which no link here can carry."""
    header = ipv6.build(payload_length=0, next_header=nxt, src=bytes(16), dst=bytes(16))
    assert reason_of(ipv6.parse, header + bytes(16)) is DropReason.BAD_LENGTH


def test_ipv6_address_helpers() -> None:
    mac = bytes.fromhex("525400123456")
    assert ipv6.eui64(mac) == bytes.fromhex("505400fffe123456")
    assert ipv6.link_local_from_mac(mac) == bytes.fromhex("fe80000000000000505400fffe123456")
    addr = bytes.fromhex("fd000000000000000000000000abcdef")
    assert ipv6.solicited_node(addr) == bytes.fromhex("ff0200000000000000000001ffabcdef")
    assert ipv6.is_link_local(bytes.fromhex("febf" + "00" * 14))
    assert not ipv6.is_link_local(bytes.fromhex("fec0" + "00" * 14))
    assert ipv6.is_multicast(ipv6.ALL_NODES) and not ipv6.is_multicast(addr)


# --- IPv6 extension header chains -------------------------------------------------------

@dataclass
class Opt:
    """One TLV option of a hop-by-hop or destination options header (RFC 8200 4.2)."""

    kind: int
    data: bytes

    def encode(self) -> bytes:
        if self.kind == 0:
            return b"\x00"
        return bytes((self.kind, len(self.data))) + self.data


@dataclass
class Ext:
    kind: int  # HOPOPT, IPV6_OPTS, IPV6_ROUTE or IPV6_FRAG
    options: tuple[Opt, ...] = ()
    routing_type: int = 0
    segments_left: int = 0
    route_data: bytes = b""
    frag_offset: int = 0
    frag_more: bool = False
    frag_ident: int = 0

    def encode(self, next_header: int) -> bytes:
        if self.kind == IPProto.IPV6_FRAG:
            return ipv6.build_fragment_header(next_header, self.frag_offset, self.frag_more,
                                              self.frag_ident)
        if self.kind == IPProto.IPV6_ROUTE:
            body = bytes((self.routing_type, self.segments_left)) + bytes(4) + self.route_data
        else:
            body = b"".join(o.encode() for o in self.options)
            gap = -(2 + len(body)) % 8
            body += b"\x00" if gap == 1 else (bytes((1, gap - 2)) + bytes(gap - 2) if gap else b"")
        assert (2 + len(body)) % 8 == 0
        return bytes((next_header, (2 + len(body)) // 8 - 1)) + body


def chain_bytes(exts: list[Ext], upper: int) -> tuple[bytes, int]:
    """The encoded chain after a fixed header, and the Next Header of that fixed header."""
    out = b""
    nxt = upper
    for ext in reversed(exts):
        out = ext.encode(nxt) + out
        nxt = ext.kind
    return out, nxt


UNDERSTOOD = {0, 1, 5}  # Pad1, PadN, Router Alert


def unknown_kind(action: int) -> st.SearchStrategy[int]:
    return st.integers(0, 63).map(lambda low: action << 6 | low).filter(
        lambda k: k not in UNDERSTOOD)


SKIP_ONLY = st.just(0)  # unknown options whose action bits are 00


def option(action: st.SearchStrategy[int] = SKIP_ONLY) -> st.SearchStrategy[Opt]:
    known = st.one_of(
        st.just(Opt(0, b"")),
        st.binary(max_size=12).map(lambda b: Opt(1, bytes(len(b)))),
        u16.map(lambda v: Opt(5, struct.pack("!H", v))),
    )
    unknown = action.flatmap(unknown_kind).flatmap(
        lambda k: st.binary(max_size=20).map(lambda d: Opt(k, d)))
    return st.one_of(known, unknown)


def options_header(kind: int, action: st.SearchStrategy[int] = SKIP_ONLY
                   ) -> st.SearchStrategy[Ext]:
    return st.lists(option(action), max_size=6).map(lambda opts: Ext(kind, tuple(opts)))


routing_header = st.builds(
    lambda t, n: Ext(IPProto.IPV6_ROUTE, routing_type=t, route_data=bytes(16 * n)),
    u8, st.integers(0, 3))
fragment_header = st.builds(
    lambda off, more, ident: Ext(IPProto.IPV6_FRAG, frag_offset=off * 8, frag_more=more,
                                 frag_ident=ident),
    st.integers(0, 0x1FFF), st.booleans(), st.integers(0, 0xFFFFFFFF))
upper_layer = st.one_of(st.sampled_from([IPProto.TCP, IPProto.UDP, IPProto.ICMPV6,
                                         IPProto.IPV6_NONXT]),
                        u8.filter(lambda p: p not in ipv6.EXTENSION_HEADERS))


@st.composite
def clean_chains(draw: st.DrawFn) -> list[Ext]:
    """[hop-by-hop] (routing | destination options)* [fragment], all acceptable."""
    exts: list[Ext] = []
    if draw(st.booleans()):
        exts.append(draw(options_header(IPProto.HOPOPT)))
    exts += draw(st.lists(st.one_of(options_header(IPProto.IPV6_OPTS), routing_header),
                          max_size=4))
    if draw(st.booleans()):
        exts.append(draw(fragment_header))
    return exts


def fixed_header(chain: bytes, nxt: int, dst: bytes = b"\xfd" + bytes(15)) -> bytes:
    return ipv6.build(payload_length=max(len(chain), 1), next_header=nxt,
                      src=b"\xfd" + bytes(14) + b"\x01", dst=dst)


@given(clean_chains(), upper_layer, st.binary(max_size=16))
def test_walk_extensions_over_generated_chains(exts: list[Ext], upper: int,
                                               payload: bytes) -> None:
    chain, nxt = chain_bytes(exts, upper)
    packet = fixed_header(chain + payload, nxt) + chain + payload
    result = ipv6.walk_extensions(packet, nxt)
    assert result.problem is None
    # expected: walk to the fragment header (if any), else to the upper layer
    offset, pointer = 40, 6
    for ext in exts:
        if ext.kind == IPProto.IPV6_FRAG:
            break
        pointer = offset
        offset += len(ext.encode(0))
    if exts and exts[-1].kind == IPProto.IPV6_FRAG:
        frag = exts[-1]
        assert result.protocol == IPProto.IPV6_FRAG
        assert result.fragment == ipv6.FragmentInfo(offset, upper, frag.frag_offset,
                                                    frag.frag_more, frag.frag_ident)
    else:
        assert result.protocol == upper
        assert result.fragment is None
        assert packet[result.offset:] == payload
    assert (result.offset, result.pointer) == (offset, pointer)
    assert packet[pointer] == (result.protocol if pointer != 6 else nxt)


@given(clean_chains().filter(lambda e: bool(e)), upper_layer, st.data())
def test_walk_extensions_truncated_chain(exts: list[Ext], upper: int,
                                         data: st.DataObject) -> None:
    chain, nxt = chain_bytes(exts, upper)
    packet = fixed_header(chain, nxt) + chain
    cut = data.draw(st.integers(40, len(packet) - 1))
    assert reason_of(ipv6.walk_extensions, packet[:cut], nxt) is DropReason.BAD_EXTENSION_HEADER
    assert reason_of(ipv6.walk_extensions, packet, nxt, end=cut) \
        is DropReason.BAD_EXTENSION_HEADER


@given(st.lists(st.tuples(st.sampled_from([IPProto.HOPOPT, IPProto.IPV6_OPTS]),
                          st.lists(option(st.integers(0, 3)), min_size=1, max_size=4)),
                min_size=1, max_size=3),
       st.booleans())
def test_unknown_options_act_by_their_top_two_bits(
        headers: list[tuple[int, list[Opt]]], multicast: bool) -> None:
    """RFC 8200 4.2: 00 skip; 01 discard; 10 discard + Parameter Problem code 2;
    11 the same, but no ICMP when the destination is multicast. The first
    non-skip option in processing order decides."""
    exts = [Ext(kind, tuple(opts)) for kind, opts in headers]
    exts = [e for i, e in enumerate(exts) if e.kind == IPProto.IPV6_OPTS or i == 0]
    chain, nxt = chain_bytes(exts, IPProto.UDP)
    dst = ipv6.ALL_NODES if multicast else b"\xfd" + bytes(15)
    packet = fixed_header(chain, nxt, dst) + chain
    expected: tuple[int, int] | None = None  # (action, offset of the option)
    offset = 40
    for ext in exts:
        at = offset + 2
        for opt in ext.options:
            if opt.kind not in UNDERSTOOD and opt.kind >> 6 and expected is None:
                expected = (opt.kind >> 6, at)
            at += len(opt.encode())
        offset += len(ext.encode(0))
    if expected is None:
        result = ipv6.walk_extensions(packet, nxt, multicast_dst=multicast)
        assert (result.protocol, result.offset, result.problem) == (IPProto.UDP, offset, None)
        return
    action, at = expected
    if action == 1:
        assert reason_of(ipv6.walk_extensions, packet, nxt, multicast_dst=multicast) \
            is DropReason.BAD_OPTION
        return
    result = ipv6.walk_extensions(packet, nxt, multicast_dst=multicast)
    send = action == 2 or not multicast
    assert result.problem == ipv6.ParameterProblem(ipv6.PP_UNRECOGNIZED_OPTION, at, send)
    assert packet[at] >> 6 == action


@given(st.sampled_from([IPProto.HOPOPT, IPProto.IPV6_OPTS]), st.integers(1, 20))
def test_option_overrunning_its_header(kind: int, claimed: int) -> None:
    # PadN at the start of the option area claims more bytes than the 6 that remain
    chain = bytes((IPProto.UDP, 0, 1, 4 + claimed)) + bytes(4)
    packet = fixed_header(chain, kind) + chain + bytes(64)
    assert reason_of(ipv6.walk_extensions, packet, kind) is DropReason.BAD_OPTION


@given(st.lists(st.one_of(options_header(IPProto.IPV6_OPTS), routing_header), max_size=3),
       st.booleans())
def test_hop_by_hop_must_come_first(before: list[Ext], after_reassembly: bool) -> None:
    """RFC 8200 4.1: a hop-by-hop header anywhere else: Parameter Problem code 1."""
    exts = [*before, Ext(IPProto.HOPOPT)]
    chain, nxt = chain_bytes(exts, IPProto.UDP)
    packet = fixed_header(chain, nxt) + chain
    if not before and not after_reassembly:
        assert ipv6.walk_extensions(packet, nxt).problem is None
        return
    result = ipv6.walk_extensions(packet, nxt, first=not after_reassembly)
    pointer = 6 if not before else 40 + sum(len(e.encode(0)) for e in before[:-1])
    assert result.problem == ipv6.ParameterProblem(ipv6.PP_UNRECOGNIZED_NEXT_HEADER, pointer,
                                                   True)
    assert result.protocol == IPProto.HOPOPT


@given(st.lists(options_header(IPProto.IPV6_OPTS), max_size=2), u8, st.integers(1, 255))
def test_routing_header_with_segments_left(before: list[Ext], rtype: int, left: int) -> None:
    """RFC 8200 4.4: an unrecognised routing type with segments left: code 0, pointing
    at the Routing Type field."""
    route = Ext(IPProto.IPV6_ROUTE, routing_type=rtype, segments_left=left,
                route_data=bytes(16))
    chain, nxt = chain_bytes([*before, route], IPProto.TCP)
    packet = fixed_header(chain, nxt) + chain
    at = 40 + sum(len(e.encode(0)) for e in before)
    result = ipv6.walk_extensions(packet, nxt)
    assert result.problem == ipv6.ParameterProblem(ipv6.PP_ERRONEOUS_FIELD, at + 2, True)
    assert packet[at + 2] == rtype


@given(st.integers(0, 0x1FFF), st.booleans(), st.integers(0, 0xFFFFFFFF), u8)
def test_fragment_header_roundtrip(offset: int, more: bool, ident: int, nxt: int) -> None:
    frag = ipv6.build_fragment_header(nxt, offset * 8, more, ident)
    assert frag == struct.pack("!BBHI", nxt, 0, offset << 3 | more, ident)
    packet = fixed_header(frag, IPProto.IPV6_FRAG) + frag
    result = ipv6.walk_extensions(packet, IPProto.IPV6_FRAG)
    assert result.fragment == ipv6.FragmentInfo(40, nxt, offset * 8, more, ident)


@given(clean_chains(), upper_layer, st.binary(max_size=16))
def test_upper_layer_skips_the_chain(exts: list[Ext], upper: int, payload: bytes) -> None:
    """Skipping by length reaches the upper layer, through a first fragment's header too."""
    chain, nxt = chain_bytes(exts, upper)
    packet = fixed_header(chain + payload, nxt) + chain + payload
    if exts and exts[-1].kind == IPProto.IPV6_FRAG and exts[-1].frag_offset:
        assert ipv6.upper_layer(packet, nxt) == (IPProto.IPV6_FRAG, -1)
    else:
        assert ipv6.upper_layer(packet, nxt) == (upper, 40 + len(chain))


@given(st.lists(st.tuples(st.sampled_from([IPProto.HOPOPT, IPProto.IPV6_OPTS]),
                          st.lists(option(st.integers(0, 3)), max_size=4)), max_size=3),
       upper_layer)
def test_upper_layer_interprets_no_option(headers: list[tuple[int, list[Opt]]],
                                          upper: int) -> None:
    exts = [Ext(kind, tuple(opts)) for kind, opts in headers]
    chain, nxt = chain_bytes(exts, upper)
    packet = fixed_header(chain, nxt) + chain
    assert ipv6.upper_layer(packet, nxt) == (upper, len(packet))


@given(clean_chains().filter(lambda e: bool(e)), upper_layer, st.data())
def test_upper_layer_of_a_cut_chain(exts: list[Ext], upper: int, data: st.DataObject) -> None:
    chain, nxt = chain_bytes(exts, upper)
    packet = fixed_header(chain, nxt) + chain
    cut = data.draw(st.integers(40, len(packet) - 1))
    _proto, offset = ipv6.upper_layer(packet[:cut], nxt)
    assert offset == -1 or offset >= cut
