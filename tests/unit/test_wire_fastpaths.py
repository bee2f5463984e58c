# SPDX-License-Identifier: MIT
"""The per-packet shortcuts of the data path give the same bytes as the general code:
the timestamp-only option block, the positional IPv4 header, the pseudo-header sum
without concatenation, a route's cached address sum, and the RTT estimator."""

from __future__ import annotations

import random
import struct

from ustack.testing.pair import make_pair
from ustack.transport.tcp import rto
from ustack.wire import checksum, ipv4
from ustack.wire import tcp as wire
from ustack.wire.proto import IPProto


def test_timestamp_option_is_the_nop_nop_ts_block() -> None:
    block = wire.timestamp_option(0x01020304, 0xFFFFFFFF)
    assert block == bytes.fromhex("0101080a01020304ffffffff")
    assert block == wire.build_options(wire.TCPOptions(timestamp=(0x01020304, 0xFFFFFFFF)))
    assert wire.parse_options(block, 0, len(block)).timestamp == (0x01020304, 0xFFFFFFFF)


def test_build_unfragmented_matches_build_into() -> None:
    rng = random.Random(7)
    for _ in range(200):
        total, protocol = rng.randrange(20, 0x10000), rng.choice((1, 6, 17))
        src, dst = rng.randbytes(4), rng.randbytes(4)
        ttl, tos, ident = rng.randrange(256), rng.randrange(256), rng.randrange(0x10000)
        dont_fragment = rng.random() < 0.5
        general = bytearray(ipv4.MIN_HEADER_LEN)
        ipv4.build_into(general, 0, total_length=total, protocol=protocol, src=src, dst=dst,
                        ttl=ttl, tos=tos, ident=ident, dont_fragment=dont_fragment)
        fast = bytearray(ipv4.MIN_HEADER_LEN)
        ipv4.build_unfragmented(memoryview(fast), total, protocol, src, dst, ttl, tos, ident,
                                dont_fragment)
        assert fast == general
        hdr = ipv4.parse(bytes(fast) + bytes(total - ipv4.MIN_HEADER_LEN))  # checksum checked
        assert (hdr.ttl, hdr.dont_fragment, hdr.is_fragment) == (ttl, dont_fragment, False)


def _pseudo_header_bytes(src: bytes, dst: bytes, protocol: int, length: int) -> bytes:
    if len(src) == 4:  # RFC 9293 3.1
        return src + dst + struct.pack("!BBH", 0, protocol, length)
    return src + dst + struct.pack("!I3xB", length, protocol)  # RFC 8200 8.1


def test_pseudo_header_sum_equals_the_sum_of_the_pseudo_header() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        size = rng.choice((4, 16))
        src = bytes(rng.choice((0, 0xFF, rng.randrange(256))) for _ in range(size))
        dst = bytes(rng.choice((0, 0xFF, rng.randrange(256))) for _ in range(size))
        protocol = rng.choice((6, 17, 58))
        length = rng.randrange(0xFFFF if size == 4 else 0x20000)
        want = checksum.ones_sum(_pseudo_header_bytes(src, dst, protocol, length))
        got = checksum.pseudo_header_sum(src, dst, protocol, length)
        # the same one's-complement value (0xFFFF and 0 both stand for zero)
        assert got % 0xFFFF == want % 0xFFFF
        assert got == want or {got, want} == {0, 0xFFFF}


def test_route_address_sum_gives_the_tcp_checksum() -> None:
    pair = make_pair()
    route = pair.a.find_route(bytes((10, 0, 0, 2)))
    segment = bytearray(wire.MIN_HEADER_LEN) + b"payload!"
    wire.fill_checksum(segment, route.local_addr, route.remote_addr)
    expected = struct.unpack_from("!H", segment, 16)[0]
    struct.pack_into("!H", segment, 16, 0)
    initial = checksum.combine(route.address_sum, IPProto.TCP + len(segment))
    assert checksum.checksum(segment, initial) == expected


def _reference_sample(est: rto.RTTEstimate, rtt: float, granularity: float, min_rto: float,
                      max_rto: float, slop: float) -> tuple[float, ...]:
    """RFC 6298 2.2-2.5 written plainly."""
    rtt = max(rtt, 1e-6)
    if est.srtt == 0.0:
        srtt, rttvar = rtt, rtt / 2
    else:
        rttvar = (1 - rto.BETA) * est.rttvar + rto.BETA * abs(est.srtt - rtt)
        srtt = (1 - rto.ALPHA) * est.srtt + rto.ALPHA * rtt
    value = min(max(srtt + max(granularity, rto.K * rttvar), min_rto) + slop, max_rto)
    min_rtt = rtt if est.min_rtt == 0.0 else min(est.min_rtt, rtt)
    return (srtt, rttvar, value, min_rtt, rtt)


def test_rtt_sample_matches_rfc6298_written_plainly() -> None:
    rng = random.Random(5)
    est = rto.RTTEstimate()
    for _ in range(5000):
        rtt = rng.choice((0.0, 1e-7, rng.random() * 0.3, rng.random() * 5))
        args = (rng.choice((0.001, 0.0)), rng.choice((0.2, 1.0)), rng.choice((120.0, 0.5)),
                rng.choice((0.0, 0.2)))
        want = _reference_sample(est, rtt, *args)
        est = rto.sample(est, rtt, *args)
        assert tuple(est) == want
