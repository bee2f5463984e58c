# SPDX-License-Identifier: MIT
"""IGMP (RFC 2236, RFC 3376 4.1/4.2) and MLD (RFC 2710, RFC 3810 5.1/5.2) wire formats:
hypothesis round trips, and scapy as an independent decoder and encoder both ways."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.igmp import IGMP, IGMPv3
from scapy.layers.igmp import IGMPv3_MQ as IGMPv3mq
from scapy.layers.igmp import IGMPv3_MR as IGMPv3mr
from scapy.layers.igmp import IGMPv3_MR_Group as IGMPv3gr
from scapy.layers.inet import IP
from scapy.layers.inet6 import (
    ICMPv6MLDMultAddrRec,
    ICMPv6MLQuery,
    ICMPv6MLQuery2,
    ICMPv6MLReport2,
    IPv6,
    IPv6ExtHdrHopByHop,
    RouterAlert,
)

from ustack.wire import checksum, igmp, mld
from ustack.wire.errors import DropReason, ParseError

SCAPY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

addr4 = st.binary(min_size=4, max_size=4)
addr6 = st.binary(min_size=16, max_size=16)
group4 = st.binary(min_size=4, max_size=4).map(lambda b: bytes((224 + b[0] % 16,)) + b[1:])
group6 = st.binary(min_size=15, max_size=15).map(lambda b: b"\xff" + b)
link_local = st.binary(min_size=8, max_size=8).map(lambda b: bytes.fromhex("fe80") + bytes(6) + b)
record_type = st.integers(1, 6)

records4 = st.lists(st.builds(igmp.GroupRecord, record_type, group4,
                              st.lists(addr4, max_size=3).map(tuple), aux=st.just(b"")),
                    max_size=4)
records6 = st.lists(st.builds(mld.AddressRecord, record_type, group6,
                              st.lists(addr6, max_size=3).map(tuple), aux=st.just(b"")),
                    max_size=4)


def ip4(addr: bytes) -> str:
    return str(ipaddress.IPv4Address(addr))


def ip6(addr: bytes) -> str:
    return str(ipaddress.IPv6Address(addr))


def scapy_records(report: Any) -> list[Any]:
    """scapy chains each MLDv2 address record after the first as the previous one's payload."""
    out: list[Any] = []
    for first in report.records:
        rec = first
        while isinstance(rec, ICMPv6MLDMultAddrRec):
            out.append(rec)
            rec = rec.payload
    return out


# --- round trips --------------------------------------------------------------------------


@given(records4)
def test_igmpv3_report_round_trip(records: list[igmp.GroupRecord]) -> None:
    data = igmp.build_v3_report(records)
    assert checksum.verify(data)
    assert igmp.parse(data) == igmp.V3Report(tuple(records))


@given(st.sampled_from([igmp.V1_REPORT, igmp.V2_REPORT, igmp.V2_LEAVE]), group4)
def test_igmp_v1_v2_messages_round_trip(kind: int, group: bytes) -> None:
    assert igmp.parse(igmp.build_v2(kind, group)) == igmp.Report(kind, group)


@given(group4 | st.just(bytes(4)), st.integers(0, 255), st.lists(addr4, max_size=5),
       st.booleans(), st.integers(0, 7), st.integers(0, 255))
def test_igmpv3_query_round_trip(group: bytes, code: int, sources: list[bytes], suppress: bool,
                                 qrv: int, qqic: int) -> None:
    query = igmp.parse(igmp.build_v3_query(group, code, sources, suppress, qrv, qqic))
    assert query == igmp.Query(3, igmp.decode_code(code) / 10, group, suppress, qrv,
                               float(igmp.decode_code(qqic)), tuple(sources))


def test_igmp_query_version_from_length_and_code() -> None:
    """RFC 3376 7.1: 8 bytes and code 0 is v1 (10 s), 8 bytes otherwise v2, 12+ is v3."""
    assert igmp.parse(igmp.build_v2(igmp.QUERY, bytes(4))) == igmp.Query(1, 10.0, bytes(4))
    v2 = igmp.parse(igmp.build_v2(igmp.QUERY, b"\xe0\x01\x02\x03", 25))
    assert v2 == igmp.Query(2, 2.5, b"\xe0\x01\x02\x03")
    v3 = igmp.parse(igmp.build_v3_query(bytes(4), 100))
    assert isinstance(v3, igmp.Query) and v3.version == 3
    odd = bytearray(igmp.build_v2(igmp.QUERY, bytes(4), 10) + b"\0\0")
    odd[2:4] = b"\0\0"
    odd[2:4] = checksum.checksum(odd).to_bytes(2, "big")
    with pytest.raises(ParseError) as exc:  # a 10-byte query must be ignored
        igmp.parse(bytes(odd))
    assert exc.value.reason is DropReason.BAD_LENGTH


def test_igmp_bad_checksum_and_truncation_are_parse_errors() -> None:
    data = bytearray(igmp.build_v3_report([igmp.GroupRecord(4, b"\xe0\0\0\x05")]))
    data[-1] ^= 1
    for bad, reason in ((bytes(data), DropReason.BAD_CHECKSUM),
                        (b"\x11\0\0", DropReason.TRUNCATED)):
        with pytest.raises(ParseError) as exc:
            igmp.parse(bad)
        assert exc.value.reason is reason


FLOATING_CODES = [  # (encode, decode, largest code, largest value)
    (igmp.encode_code, igmp.decode_code, 0xFF, 31744),  # RFC 3376 4.1.1
    (mld.encode_max_resp, mld.decode_max_resp, 0xFFFF, 8387584),  # RFC 3810 5.1.3
]


@pytest.mark.parametrize(("encode", "decode", "top_code", "top_value"), FLOATING_CODES)
@given(data=st.data())
def test_floating_code_is_the_largest_not_above(encode: Callable[[int], int],
                                                decode: Callable[[int], int], top_code: int,
                                                top_value: int, data: st.DataObject) -> None:
    """The code encodes a value at most ``value``, and the next code exceeds it."""
    value = data.draw(st.integers(0, top_value))
    code = encode(value)
    assert decode(code) <= value
    if code < top_code:
        assert decode(code + 1) > value
    assert decode(top_code) == top_value and encode(top_value * 2) == top_code


@given(records6, link_local)
def test_mldv2_report_round_trip(records: list[mld.AddressRecord], src: bytes) -> None:
    data = mld.build_v2_report(records, src)
    assert mld.parse(data, src, mld.V2_ROUTERS) == mld.V2Report(tuple(records))


@given(group6 | st.just(bytes(16)), st.integers(0, 0xFFFF), st.lists(addr6, max_size=4),
       st.booleans(), st.integers(0, 7), st.integers(0, 255), link_local)
def test_mldv2_query_round_trip(group: bytes, code: int, sources: list[bytes], suppress: bool,
                                qrv: int, qqic: int, src: bytes) -> None:
    data = mld.build_v2_query(group, src, mld.ALL_NODES, code, sources, suppress, qrv, qqic)
    assert mld.parse(data, src, mld.ALL_NODES) == mld.Query(
        2, mld.decode_max_resp(code) / 1000, group, suppress, qrv, float(mld.decode_qqic(qqic)),
        tuple(sources))


@given(st.sampled_from([mld.QUERY, mld.V1_REPORT, mld.V1_DONE]), group6, link_local,
       st.integers(0, 0xFFFF))
def test_mldv1_round_trip(kind: int, group: bytes, src: bytes, delay: int) -> None:
    data = mld.build_v1(kind, group, src, group, delay)
    parsed = mld.parse(data, src, group)
    if kind == mld.QUERY:
        assert parsed == mld.Query(1, delay / 1000, group)
    else:
        assert parsed == mld.Report(kind, group)


def test_mld_checksum_covers_the_pseudo_header() -> None:
    src = bytes.fromhex("fe800000000000000000000000000001")
    data = mld.build_v2_report([mld.AddressRecord(4, bytes.fromhex("ff12" + "00" * 13 + "01"))],
                               src)
    with pytest.raises(ParseError) as exc:  # a different source breaks the checksum
        mld.parse(data, bytes.fromhex("fe800000000000000000000000000002"), mld.V2_ROUTERS)
    assert exc.value.reason is DropReason.BAD_CHECKSUM


def test_split_records_fills_reports_up_to_the_room() -> None:
    records = [igmp.GroupRecord(2, bytes((224, 1, 0, i))) for i in range(200)]
    batches = list(igmp.split_records(records, 1500 - igmp.IP_HEADER_LEN))
    assert [len(b) for b in batches] == [183, 17]  # (1476 - 8) // 8 records per report
    assert [r for b in batches for r in b] == records


# --- scapy decodes what ustack builds ------------------------------------------------------


@SCAPY
@given(records4, addr4)
def test_scapy_decodes_igmpv3_report_with_router_alert(records: list[igmp.GroupRecord],
                                                       src: bytes) -> None:
    message = igmp.build_v3_report(records)
    pkt = IP(igmp.build_packet(src, igmp.V3_ROUTERS, message, 7))
    assert pkt.ttl == 1 and pkt.tos == 0xC0 and pkt.proto == 2 and pkt.dst == "224.0.0.22"
    assert [(o.option, o.length) for o in pkt.options] == [(20, 4)]  # Router Alert (148)
    assert pkt.chksum == IP(bytes(pkt.copy().__class__(bytes(pkt))))[IP].chksum
    report = pkt[IGMPv3mr]
    assert pkt[IGMPv3].type == 0x22 and report.numgrp == len(records)
    assert [(g.rtype, g.maddr, list(g.srcaddrs)) for g in report.records] == [
        (r.type, ip4(r.group), [ip4(s) for s in r.sources]) for r in records]
    rebuilt = IGMPv3(bytes(pkt[IGMPv3]))
    del rebuilt.chksum
    assert IGMPv3(bytes(rebuilt)).chksum == pkt[IGMPv3].chksum  # scapy's own checksum


@SCAPY
@given(st.sampled_from([0x12, 0x16, 0x17]), group4)
def test_scapy_decodes_igmp_v1_v2(kind: int, group: bytes) -> None:
    pkt = IGMP(igmp.build_v2(kind, group))
    assert pkt.type == kind and pkt.gaddr == ip4(group)
    rebuilt = IGMP(type=kind, gaddr=ip4(group))
    assert bytes(rebuilt) == igmp.build_v2(kind, group)


@SCAPY
@given(records6, link_local)
def test_scapy_decodes_mldv2_report_with_hop_by_hop_router_alert(
        records: list[mld.AddressRecord], src: bytes) -> None:
    message = mld.build_v2_report(records, src)
    pkt = IPv6(mld.build_packet(src, mld.V2_ROUTERS, message))
    assert pkt.hlim == 1 and pkt.nh == 0 and pkt.dst == "ff02::16"
    alerts = [o for o in pkt[IPv6ExtHdrHopByHop].options if isinstance(o, RouterAlert)]
    assert [a.value for a in alerts] == [0]
    report = pkt[ICMPv6MLReport2]
    assert report.records_number == len(records)
    assert [(r.rtype, r.dst, list(r.sources)) for r in scapy_records(report)] == [
        (r.type, ip6(r.group), [ip6(s) for s in r.sources]) for r in records]
    clone = pkt.copy()
    del clone[ICMPv6MLReport2].cksum
    assert IPv6(bytes(clone))[ICMPv6MLReport2].cksum == report.cksum


# --- ustack parses what scapy builds -------------------------------------------------------


@SCAPY
@given(group4 | st.just(bytes(4)), st.integers(0, 3000), st.lists(addr4, max_size=4),
       st.integers(0, 7))
def test_ustack_parses_scapy_igmpv3_query(group: bytes, code: int, sources: list[bytes],
                                          qrv: int) -> None:
    pkt = IGMPv3mq(mrcode=code, gaddr=ip4(group), qrv=qrv, qqic=125,
                   srcaddrs=[ip4(s) for s in sources])
    query = igmp.parse(bytes(pkt))
    # scapy takes mrcode as a time and encodes it itself: our encoder must agree with it
    assert query == igmp.Query(3, igmp.decode_code(igmp.encode_code(code)) / 10, group, False,
                               qrv, 125.0, tuple(sources))


@SCAPY
@given(records4)
def test_ustack_parses_scapy_igmpv3_report(records: list[igmp.GroupRecord]) -> None:
    pkt = IGMPv3mr(records=[
        IGMPv3gr(rtype=r.type, maddr=ip4(r.group), srcaddrs=[ip4(s) for s in r.sources])
        for r in records])
    assert igmp.parse(bytes(pkt)) == igmp.V3Report(tuple(records))


@SCAPY
@given(group6 | st.just(bytes(16)), st.integers(0, 0x7FFF), st.lists(addr6, max_size=3),
       link_local)
def test_ustack_parses_scapy_mld_queries(group: bytes, mrd: int, sources: list[bytes],
                                         src: bytes) -> None:
    v2 = IPv6(src=ip6(src), dst="ff02::1", hlim=1) / ICMPv6MLQuery2(
        mrd=mrd, mladdr=ip6(group), QRV=2, QQIC=125, sources=[ip6(s) for s in sources])
    raw = bytes(v2)
    assert mld.parse(raw[40:], src, mld.ALL_NODES) == mld.Query(
        2, mrd / 1000, group, False, 2, 125.0, tuple(sources))
    v1 = bytes(IPv6(src=ip6(src), dst="ff02::1", hlim=1) / ICMPv6MLQuery(
        mrd=mrd, mladdr=ip6(group)))
    assert mld.parse(v1[40:], src, mld.ALL_NODES) == mld.Query(1, mrd / 1000, group)


@SCAPY
@given(records6, link_local)
def test_ustack_parses_scapy_mldv2_report(records: list[mld.AddressRecord], src: bytes) -> None:
    pkt = IPv6(src=ip6(src), dst="ff02::16", hlim=1) / ICMPv6MLReport2(records=[
        ICMPv6MLDMultAddrRec(rtype=r.type, dst=ip6(r.group), sources=[ip6(s) for s in r.sources])
        for r in records])
    raw = bytes(pkt)
    assert mld.parse(raw[40:], src, mld.V2_ROUTERS) == mld.V2Report(tuple(records))
