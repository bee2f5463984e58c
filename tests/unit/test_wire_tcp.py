# SPDX-License-Identifier: MIT
"""TCP header and options (RFC 9293 3.1, RFC 7323, RFC 2018, RFC 7413, RFC 6994)."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.wire_reference import naive_sum, pseudo4, pseudo6
from ustack.wire import DropReason, ParseError, tcp
from ustack.wire.proto import IPProto

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
addr_pairs = st.one_of(
    st.tuples(st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4)),
    st.tuples(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16)))
KNOWN = {tcp.OPT_EOL, tcp.OPT_NOP, tcp.OPT_MSS, tcp.OPT_WSCALE, tcp.OPT_SACK_PERMITTED,
         tcp.OPT_SACK, tcp.OPT_TIMESTAMP, tcp.OPT_FASTOPEN, tcp.OPT_EXPERIMENTAL}


def reason_of(fn: Callable[..., object], *args: object) -> DropReason:
    with pytest.raises(ParseError) as info:
        fn(*args)
    return info.value.reason


# --- the fixed header -------------------------------------------------------------------

@given(addr_pairs, u16, u16, u32, u32, st.integers(0, 255), u16, u16,
       st.integers(0, 10).map(lambda n: bytes((1,)) * 4 * n), st.binary(max_size=100))
def test_tcp_header_roundtrip(addrs: tuple[bytes, bytes], sport: int, dport: int, seq: int,
                              ack: int, flags: int, window: int, urgent: int, options: bytes,
                              payload: bytes) -> None:
    src, dst = addrs
    seg = bytearray(20 + len(options))
    hlen = tcp.build_header_into(seg, 0, src_port=sport, dst_port=dport, seq=seq, ack=ack,
                                 flags=flags, window=window, options=options, urgent=urgent)
    assert hlen == len(seg) and seg[12] == (hlen // 4) << 4
    tcp.fill_checksum(seg, src, dst, payload)
    whole = bytes(seg) + payload
    pseudo = (pseudo4 if len(src) == 4 else pseudo6)(src, dst, IPProto.TCP, len(whole))
    assert naive_sum(pseudo + whole) == 0xFFFF
    csum = struct.unpack_from("!H", seg, 16)[0]
    assert tcp.parse(whole, src, dst) == tcp.TCPHeader(sport, dport, seq, ack, hlen, flags,
                                                       window, csum, urgent)
    assert whole[20:hlen] == options


@given(addr_pairs, st.binary(max_size=60), st.data())
def test_tcp_bit_flip_is_a_bad_checksum(addrs: tuple[bytes, bytes], payload: bytes,
                                        data: st.DataObject) -> None:
    src, dst = addrs
    seg = bytearray(20)
    tcp.build_header_into(seg, 0, src_port=1, dst_port=2, seq=3, ack=4, flags=tcp.ACK,
                          window=5)
    tcp.fill_checksum(seg, src, dst, payload)
    whole = bytearray(seg + payload)
    bit = data.draw(st.integers(0, len(whole) * 8 - 1).filter(lambda b: not 96 <= b < 100))
    whole[bit // 8] ^= 0x80 >> (bit % 8)
    assert reason_of(tcp.parse, whole, src, dst) is DropReason.BAD_CHECKSUM


@given(st.integers(0, 15), st.integers(0, 100))
def test_tcp_data_offset_checks(offset: int, extra: int) -> None:
    seg = bytearray(20 + extra)
    seg[12] = offset << 4
    if offset < 5 or offset * 4 > len(seg):
        assert reason_of(tcp.parse, seg, bytes(4), bytes(4)) is DropReason.BAD_HEADER_LENGTH
    else:
        assert tcp.parse(seg, bytes(4), bytes(4), False).header_length == offset * 4
    assert reason_of(tcp.parse, seg[:min(19, len(seg))], bytes(4), bytes(4)) \
        is DropReason.TRUNCATED


# --- options ----------------------------------------------------------------------------

@st.composite
def tcp_options(draw: st.DrawFn) -> tcp.TCPOptions:
    fastopen = draw(st.one_of(st.none(), st.binary(max_size=16)))
    return tcp.TCPOptions(
        mss=draw(st.one_of(st.none(), u16)),
        wscale=draw(st.one_of(st.none(), st.integers(0, 14))),
        sack_permitted=draw(st.booleans()),
        sack_blocks=tuple(draw(st.lists(st.tuples(u32, u32), max_size=4))),
        timestamp=draw(st.one_of(st.none(), st.tuples(u32, u32))),
        fastopen=fastopen,
        fastopen_experimental=fastopen is not None and draw(st.booleans()),
    )


def encoded_size(opts: tcp.TCPOptions, order: str) -> int:
    """Bytes before padding, following the layouts documented in build_options."""
    if order == "freebsd":
        return freebsd_size(opts)
    n = 4 if opts.mss is not None else 0
    n += 4 if opts.wscale is not None else 0
    n += 12 if opts.timestamp else (4 if opts.sack_permitted else 0)
    if opts.fastopen is not None:
        n += len(opts.fastopen) + (4 if opts.fastopen_experimental else 2)
    if opts.sack_blocks:
        n += 4 + 8 * len(opts.sack_blocks)
    return n


def freebsd_size(opts: tcp.TCPOptions) -> int:
    """FreeBSD's tcp_addoptions(): NOPs align each option (MSS 4n, window scale 4n+1 after
    one NOP at least, SACK-permitted 2n, timestamps and SACK blocks 4n+2)."""
    n = 0

    def place(size: int, ok: Callable[[int], bool]) -> None:
        nonlocal n
        while not ok(n):
            n += 1
        n += size

    if opts.mss is not None:
        place(4, lambda k: k % 4 == 0)
    if opts.wscale is not None:
        place(3, lambda k: k % 2 == 1)
    if opts.sack_permitted:
        place(2, lambda k: k % 2 == 0)
    if opts.timestamp:
        place(10, lambda k: k % 4 == 2)
    if opts.sack_blocks:
        place(2 + 8 * len(opts.sack_blocks), lambda k: k % 4 == 2)
    if opts.fastopen is not None:
        n += len(opts.fastopen) + (4 if opts.fastopen_experimental else 2)
    return n


@given(tcp_options(), st.sampled_from(["linux", "freebsd"]))
def test_options_roundtrip(opts: tcp.TCPOptions, order: str) -> None:
    size = encoded_size(opts, order)
    if size + (-size % 4) > tcp.MAX_OPTIONS_LEN:
        with pytest.raises(ValueError):
            tcp.build_options(opts, order)
        return
    raw = tcp.build_options(opts, order)
    assert len(raw) == size + (-size % 4)
    # Linux pads with NOPs; FreeBSD ends the list with EOL and zero padding
    pad = b"\x00" if order == "freebsd" else b"\x01"
    assert raw[size:] == pad * (len(raw) - size)
    assert tcp.parse_options(raw, 0, len(raw)) == opts
    # the same bytes inside a larger buffer, parsed through a memoryview
    framed = memoryview(b"\xee" * 20 + raw + b"payload")
    assert tcp.parse_options(framed, 20, 20 + len(raw)) == opts


def test_linux_syn_layout() -> None:
    opts = tcp.TCPOptions(mss=1460, wscale=7, sack_permitted=True, timestamp=(0x01020304, 0))
    assert tcp.build_options(opts, "linux") == bytes.fromhex(
        "020405b4" "0402" "080a0102030400000000" "01030307")


def test_freebsd_syn_layout() -> None:
    opts = tcp.TCPOptions(mss=1460, wscale=6, sack_permitted=True, timestamp=(0x01020304, 0))
    assert tcp.build_options(opts, "freebsd") == bytes.fromhex(
        "020405b4" "01030306" "0402" "080a0102030400000000")


def test_freebsd_synack_layout_pads_with_eol() -> None:
    """A FreeBSD SYN-ACK answering <mss, sackOK>: <mss 1460,sackOK,eol,eol>."""
    opts = tcp.TCPOptions(mss=1460, sack_permitted=True)
    assert tcp.build_options(opts, "freebsd") == bytes.fromhex("020405b4" "0402" "0000")


def test_established_timestamp_layout_and_fast_path() -> None:
    raw = tcp.build_options(tcp.TCPOptions(timestamp=(7, 9)))
    assert raw == bytes.fromhex("0101080a0000000700000009")
    assert tcp.parse_options(raw, 0, 12) == tcp.TCPOptions(timestamp=(7, 9))
    assert tcp.parse_options(bytearray(raw), 0, 12).timestamp == (7, 9)


@pytest.mark.parametrize(("opts", "raw"), [
    (tcp.TCPOptions(fastopen=b""), "2202" "0101"),  # a cookie request, RFC 7413 4.1.1
    (tcp.TCPOptions(fastopen=bytes(range(8))), "220a0001020304050607" "0101"),
    (tcp.TCPOptions(fastopen=b"\xaa" * 4, fastopen_experimental=True),
     "fe08f989aaaaaaaa"),
    (tcp.TCPOptions(sack_blocks=((1, 2), (3, 4))),
     "01010512" "0000000100000002" "0000000300000004"),
])
def test_option_bytes(opts: tcp.TCPOptions, raw: str) -> None:
    data = bytes.fromhex(raw.replace(" ", ""))
    assert tcp.build_options(opts) == data
    assert tcp.parse_options(data, 0, len(data)) == opts


@st.composite
def unknown_option(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(2, 255).filter(lambda k: k not in KNOWN))
    body = draw(st.binary(max_size=10))
    return bytes((kind, 2 + len(body))) + body


@given(tcp_options(), st.lists(unknown_option(), min_size=1, max_size=3), st.data())
def test_unknown_options_are_skipped_by_length(opts: tcp.TCPOptions, unknown: list[bytes],
                                               data: st.DataObject) -> None:
    """RFC 9293 3.1: an option we do not know is skipped using its length byte."""
    try:
        raw = tcp.build_options(opts, "linux")
    except ValueError:
        return
    # split the known options at NOP-aligned boundaries and insert unknown ones
    pieces = _split_options(raw)
    for extra in unknown:
        at = data.draw(st.integers(0, len(pieces)))
        pieces.insert(at, extra)
    mixed = b"".join(pieces)
    assert tcp.parse_options(mixed, 0, len(mixed)) == opts


def _split_options(raw: bytes) -> list[bytes]:
    """Cut an encoded option list into single options (NOPs are one-byte options)."""
    out = []
    i = 0
    while i < len(raw):
        size = 1 if raw[i] in (0, 1) else raw[i + 1]
        out.append(raw[i:i + size])
        i += size
    return out


@given(tcp_options(), st.binary(max_size=20))
def test_eol_ends_the_list(opts: tcp.TCPOptions, junk: bytes) -> None:
    try:
        raw = tcp.build_options(opts, "freebsd")
    except ValueError:
        return
    data = raw + b"\x00" + junk
    assert tcp.parse_options(data, 0, len(data)) == opts
    assert tcp.parse_options(b"\x00" + raw, 0, len(raw) + 1) == tcp.NO_OPTIONS


@pytest.mark.parametrize("raw", [
    "02",              # MSS without a length byte
    "0101fe",          # experimental without a length byte
    "0200",            # length 0
    "0501",            # length 1
    "020505b4",        # length past the end
    "0101080a00000001",  # timestamp cut short
])
def test_malformed_options(raw: str) -> None:
    data = bytes.fromhex(raw)
    assert reason_of(tcp.parse_options, data, 0, len(data)) is DropReason.BAD_OPTION


@pytest.mark.parametrize("raw", [
    "020305",              # MSS of length 3
    "03040700",            # window scale of length 4
    "040301",              # SACK-permitted of length 3
    "0506000000000101",    # SACK of length 6 (no whole block)
    "050900000001000000" "0101",  # SACK of length 9
    "050e" "000000010000000200000003",  # SACK of length 14: one block and a half
    "080600000001",        # timestamp of length 6
    "fe06abcd0102",        # experimental option of another experiment
])
def test_known_option_with_wrong_length_is_ignored(raw: str) -> None:
    data = bytes.fromhex(raw)
    assert tcp.parse_options(data, 0, len(data)) == tcp.NO_OPTIONS


@given(st.binary(max_size=40), st.data())
def test_option_window_is_respected(raw: bytes, data: st.DataObject) -> None:
    """Only bytes in [start, end) are read: whatever precedes them is not an option."""
    start = data.draw(st.integers(0, len(raw)))
    try:
        a = tcp.parse_options(raw, start, len(raw))
    except ParseError as err:
        assert reason_of(tcp.parse_options, b"\x99" * start + raw[start:], start, len(raw)) \
            is err.reason
        return
    assert tcp.parse_options(b"\x99" * start + raw[start:], start, len(raw)) == a
