# SPDX-License-Identifier: MIT
"""Neighbor Discovery messages and options (RFC 4861 4, RFC 8106 5.1), build then parse."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ustack.wire import DropReason, ParseError, icmp6, ndp

mac = st.binary(min_size=6, max_size=6)
addr6 = st.binary(min_size=16, max_size=16)
u32 = st.integers(0, 0xFFFFFFFF)
SRC = bytes.fromhex("fe800000000000000000000000000001")
DST = bytes.fromhex("ff020000000000000000000000000001")
KNOWN = {ndp.OPT_SOURCE_LINK_ADDR, ndp.OPT_TARGET_LINK_ADDR, ndp.OPT_PREFIX_INFO, ndp.OPT_MTU,
         ndp.OPT_RDNSS}

prefix_infos = st.builds(ndp.PrefixInfo, addr6, st.integers(0, 128), st.booleans(),
                         st.booleans(), u32, u32)


def reason_of(fn: Callable[..., object], *args: object) -> DropReason:
    with pytest.raises(ParseError) as info:
        fn(*args)
    return info.value.reason


@st.composite
def option_lists(draw: st.DrawFn) -> tuple[bytes, ndp.Options]:
    """A random sequence of options and what parsing them must give (RFC 4861 4.6)."""
    raw = b""
    slla = tlla = mtu = None
    prefixes: list[ndp.PrefixInfo] = []
    rdnss: list[bytes] = []
    lifetime = 0
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["slla", "tlla", "prefix", "mtu", "rdnss", "unknown"]))
        if kind in ("slla", "tlla"):
            address = draw(mac)
            code = ndp.OPT_SOURCE_LINK_ADDR if kind == "slla" else ndp.OPT_TARGET_LINK_ADDR
            raw += ndp.link_addr_option(code, address)
            if kind == "slla":
                slla = address
            else:
                tlla = address
        elif kind == "prefix":
            info = draw(prefix_infos)
            raw += ndp.prefix_option(info)
            prefixes.append(info)
        elif kind == "mtu":
            mtu = draw(u32)
            raw += ndp.mtu_option(mtu)
        elif kind == "rdnss":
            servers = tuple(draw(st.lists(addr6, min_size=1, max_size=3)))
            lifetime = draw(u32)
            raw += ndp.rdnss_option(servers, lifetime)
            rdnss += servers
        else:
            code = draw(st.integers(0, 255).filter(lambda k: k not in KNOWN))
            units = draw(st.integers(1, 4))
            raw += bytes((code, units)) + draw(st.binary(min_size=units * 8 - 2,
                                                         max_size=units * 8 - 2))
    return raw, ndp.Options(slla, tlla, tuple(prefixes), mtu, tuple(rdnss), lifetime)


def test_option_encodings() -> None:
    assert ndp.link_addr_option(1, bytes.fromhex("020000000001")) == bytes.fromhex(
        "0101020000000001")
    assert ndp.mtu_option(1500) == bytes.fromhex("05010000000005dc")
    info = ndp.PrefixInfo(bytes.fromhex("fd00" + "00" * 14), 64, True, True, 86400, 14400)
    assert ndp.prefix_option(info) == bytes.fromhex(
        "0304" "40" "c0" "00015180" "00003840" "00000000" "fd00" + "00" * 14)
    on_link_only = info._replace(autonomous=False)
    assert ndp.prefix_option(on_link_only)[3] == 0x80  # L is the high bit, A the next
    assert ndp.prefix_option(info._replace(on_link=False))[3] == 0x40
    raw = bytes.fromhex("0304" "40" "40" "00000e10" "00000708" "00000000") + bytes(16)
    assert ndp.parse_options(raw, 0).prefixes == (
        ndp.PrefixInfo(bytes(16), 64, False, True, 3600, 1800),)
    assert ndp.rdnss_option((bytes(15) + b"\x01",), 300) == bytes.fromhex(
        "1903" "0000" "0000012c" + "00" * 15 + "01")


@given(option_lists())
def test_options_roundtrip(case: tuple[bytes, ndp.Options]) -> None:
    raw, expected = case
    assert len(raw) % 8 == 0
    assert ndp.parse_options(raw, 0) == expected
    assert ndp.parse_options(b"\xee" * 24 + raw, 24) == expected


@given(mac, addr6, option_lists())
def test_neighbor_solicitation_roundtrip(source: bytes, target: bytes,
                                         case: tuple[bytes, ndp.Options]) -> None:
    body = ndp.neighbor_solicitation_body(target, source)
    assert body == target + bytes((1, 1)) + source
    msg = icmp6.build(icmp6.NEIGHBOR_SOLICITATION, 0, 0, body, SRC, DST)
    assert icmp6.parse(msg, SRC, DST) == (icmp6.NEIGHBOR_SOLICITATION, 0, 0)
    ns = ndp.parse_neighbor_solicitation(msg)
    assert ns.target == target and ns.options == ndp.Options(source_link_addr=source)
    raw, expected = case
    msg = icmp6.build(icmp6.NEIGHBOR_SOLICITATION, 0, 0, target + raw, SRC, DST)
    assert ndp.parse_neighbor_solicitation(msg) == ndp.NeighborSolicitation(target, expected)
    assert ndp.neighbor_solicitation_body(target, None) == target


@given(st.booleans(), st.booleans(), st.booleans(), addr6, option_lists())
def test_neighbor_advertisement_roundtrip(router: bool, solicited: bool, override: bool,
                                          target: bytes, case: tuple[bytes, ndp.Options]) -> None:
    raw, expected = case
    rest = ndp.neighbor_advertisement_rest(router, solicited, override)
    assert rest & 0x1FFFFFFF == 0  # the 29 reserved bits stay zero
    msg = icmp6.build(icmp6.NEIGHBOR_ADVERTISEMENT, 0, rest, target + raw, SRC, DST)
    assert ndp.parse_neighbor_advertisement(msg) == ndp.NeighborAdvertisement(
        router, solicited, override, target, expected)


@given(st.integers(0, 255), st.booleans(), st.booleans(), st.integers(0, 0xFFFF), u32, u32,
       option_lists())
def test_router_advertisement_roundtrip(hop_limit: int, managed: bool, other: bool,
                                        lifetime: int, reachable: int, retrans: int,
                                        case: tuple[bytes, ndp.Options]) -> None:
    raw, expected = case
    rest = ndp.router_advertisement_rest(hop_limit, managed, other, lifetime)
    body = struct.pack("!II", reachable, retrans) + raw
    msg = icmp6.build(icmp6.ROUTER_ADVERTISEMENT, 0, rest, body, SRC, DST)
    assert msg[4:8] == bytes((hop_limit, (0x80 if managed else 0) | (0x40 if other else 0))) \
        + struct.pack("!H", lifetime)
    assert ndp.parse_router_advertisement(msg) == ndp.RouterAdvertisement(
        hop_limit, managed, other, lifetime, reachable, retrans, expected)


@given(option_lists())
def test_router_solicitation_roundtrip(case: tuple[bytes, ndp.Options]) -> None:
    raw, expected = case
    msg = icmp6.build(icmp6.ROUTER_SOLICITATION, 0, 0, raw, SRC, DST)
    assert ndp.parse_router_solicitation(msg) == expected


@pytest.mark.parametrize(("parse", "minimum"), [
    (ndp.parse_neighbor_solicitation, 24), (ndp.parse_neighbor_advertisement, 24),
    (ndp.parse_router_advertisement, 16), (ndp.parse_router_solicitation, 8)])
def test_truncated_messages(parse: Callable[[bytes], object], minimum: int) -> None:
    for cut in range(minimum):
        assert reason_of(parse, bytes(minimum)[:cut]) is DropReason.TRUNCATED
    parse(bytes(minimum))


@given(option_lists(), st.binary(min_size=1, max_size=1).map(lambda b: b[0]))
def test_zero_length_option_is_malformed(case: tuple[bytes, ndp.Options], kind: int) -> None:
    """RFC 4861 4.6: a length of zero is invalid, and the packet is silently discarded."""
    raw = case[0] + bytes((kind, 0)) + bytes(6)
    assert reason_of(ndp.parse_options, raw, 0) is DropReason.BAD_OPTION


@given(option_lists(), st.integers(1, 7))
def test_option_overrunning_the_message(case: tuple[bytes, ndp.Options], cut: int) -> None:
    raw = case[0] + ndp.mtu_option(1280)
    assert reason_of(ndp.parse_options, raw[:-cut], 0) is DropReason.BAD_OPTION


@given(st.integers(1, 255).filter(lambda u: u != 4))
def test_prefix_information_of_the_wrong_length(units: int) -> None:
    """RFC 4861 4.6.2 (Length 4): a prefix option of another length is skipped, and the
    options after it are still read (only a zero length invalidates the message, 4.6)."""
    raw = bytes((ndp.OPT_PREFIX_INFO, units)) + bytes(units * 8 - 2) + ndp.mtu_option(1400)
    parsed = ndp.parse_options(raw, 0)
    assert parsed.prefixes == () and parsed.ignored == 1 and parsed.mtu == 1400


@given(st.integers(1, 5), st.lists(addr6, min_size=1, max_size=4))
def test_rdnss_of_even_length_is_ignored(extra: int, servers: list[bytes]) -> None:
    """RFC 8106 5.1: Length is 1 + 2 * (number of addresses), so always odd. An even
    Length cannot be split into addresses; reading one anyway took 8 bytes of the
    option that follows as half an address."""
    good = ndp.rdnss_option(tuple(servers), 600)
    units = good[1] + 1  # one 8-byte unit more: an even length
    bad = bytes((ndp.OPT_RDNSS, units)) + good[2:] + bytes(8)
    after = ndp.mtu_option(1400) * extra
    parsed = ndp.parse_options(bad + after, 0)
    assert parsed.rdnss == () and parsed.mtu == 1400
    assert ndp.parse_options(good + after, 0).rdnss == tuple(servers)


@pytest.mark.parametrize("units", [1, 2])
def test_rdnss_too_short_for_one_address_is_ignored(units: int) -> None:
    raw = bytes((ndp.OPT_RDNSS, units)) + bytes(units * 8 - 2)
    assert ndp.parse_options(raw, 0) == ndp.Options()


@given(prefix_infos, st.integers(129, 255))
def test_prefix_length_over_128_is_skipped(info: ndp.PrefixInfo, plen: int) -> None:
    """RFC 4861 4.6.2: 0 to 128. A longer one crashed the route table (negative shift)."""
    raw = bytearray(ndp.prefix_option(info))
    assert ndp.parse_options(raw, 0).prefixes == (info,)
    raw[2] = plen
    parsed = ndp.parse_options(raw, 0)  # skipped, the message kept
    assert parsed.prefixes == () and parsed.ignored == 1
