# SPDX-License-Identifier: MIT
"""Cross-check the wire formats against scapy, an independent encoder and decoder.

Each format both ways: built by ustack and dissected by scapy (fields compared, and
each checksum compared with the one scapy computes itself), and built by scapy and
parsed by ustack.
"""

from __future__ import annotations

import io
import ipaddress
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers import inet, inet6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import rdpcap

from ustack.wire import ParseError, arp, ethernet, icmp4, icmp6, ipv4, ipv6, ndp, pcap, tcp, udp
from ustack.wire.proto import EtherType, IPProto

SCAPY = settings(max_examples=40, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])

mac = st.binary(min_size=6, max_size=6).map(lambda m: bytes((m[0] & 0xFE,)) + m[1:])
addr4 = st.binary(min_size=4, max_size=4)
addr6 = st.binary(min_size=16, max_size=16)
u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
payloads = st.binary(max_size=64)


def ip4(addr: bytes) -> str:
    return str(ipaddress.IPv4Address(addr))


def ip6(addr: bytes) -> str:
    return str(ipaddress.IPv6Address(addr))


def mac_text(addr: bytes) -> str:
    return ethernet.format_mac(addr)


def scapy_checksum(pkt: Packet, layer: type[Packet], field: str = "chksum") -> int:
    """What scapy computes for ``layer``'s checksum when it builds the packet itself."""
    clone = pkt.copy()
    delattr(clone[layer], field)
    rebuilt = pkt.__class__(bytes(clone))
    return int(getattr(rebuilt[layer], field))


def ipv4_packet(src: bytes, dst: bytes, proto: int, l4: bytes) -> bytes:
    return ipv4.build(total_length=20 + len(l4), protocol=proto, src=src, dst=dst,
                      ident=7) + l4


def ipv6_packet(src: bytes, dst: bytes, nxt: int, l4: bytes, hop_limit: int = 64) -> bytes:
    return ipv6.build(payload_length=len(l4), next_header=nxt, src=src, dst=dst,
                      hop_limit=hop_limit) + l4


# --- Ethernet and 802.1Q ----------------------------------------------------------------

@SCAPY
@given(mac, mac, u16.filter(lambda t: t >= 0x0600 and t not in (0x8100, 0x88A8)), payloads)
def test_ethernet_ustack_to_scapy(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> None:
    frame = Ether(ethernet.build(dst, src, ethertype) + payload)
    assert (frame.dst, frame.src, frame.type) == (mac_text(dst), mac_text(src), ethertype)


@SCAPY
@given(mac, mac, st.integers(0, 4095), st.integers(0, 7), st.integers(0, 4095), st.booleans())
def test_ethernet_scapy_vlan_to_ustack(dst: bytes, src: bytes, vlan: int, prio: int,
                                       outer: int, qinq: bool) -> None:
    inner = Dot1Q(vlan=vlan, prio=prio) / inet.IP(dst="10.0.0.1") / inet.UDP()
    frame = Ether(dst=mac_text(dst), src=mac_text(src)) / (
        Dot1AD(vlan=outer) / inner if qinq else inner)
    raw = bytes(frame)
    hdr = ethernet.parse(raw)
    assert (hdr.dst, hdr.src, hdr.ethertype) == (dst, src, EtherType.IPV4)
    assert hdr.length == (22 if qinq else 18)
    assert raw[hdr.length:] == bytes(frame[inet.IP])


# --- ARP --------------------------------------------------------------------------------

@SCAPY
@given(st.sampled_from([1, 2]), mac, addr4, mac, addr4)
def test_arp_both_ways(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> None:
    ours = arp.build(arp.ARPPacket(op, sha, spa, tha, tpa))
    theirs = ARP(ours)
    assert (theirs.hwtype, theirs.ptype, theirs.hwlen, theirs.plen, theirs.op) == (
        1, 0x0800, 6, 4, op)
    assert (theirs.hwsrc, theirs.psrc, theirs.hwdst, theirs.pdst) == (
        mac_text(sha), ip4(spa), mac_text(tha), ip4(tpa))
    built = bytes(ARP(op=op, hwsrc=mac_text(sha), psrc=ip4(spa), hwdst=mac_text(tha),
                      pdst=ip4(tpa)))
    assert arp.parse(built) == (op, sha, spa, tha, tpa)
    assert built == ours


# --- IPv4 -------------------------------------------------------------------------------

@SCAPY
@given(addr4, addr4, u8, u8, u16, u8, st.booleans(), st.booleans(), st.integers(0, 0x1FFF),
       payloads)
def test_ipv4_ustack_to_scapy(src: bytes, dst: bytes, ttl: int, tos: int, ident: int,
                              proto: int, df: bool, mf: bool, offset: int,
                              payload: bytes) -> None:
    raw = ipv4.build(total_length=20 + len(payload), protocol=proto, src=src, dst=dst, ttl=ttl,
                     tos=tos, ident=ident, dont_fragment=df, more_fragments=mf,
                     fragment_offset=offset * 8) + payload
    pkt = inet.IP(raw)
    assert (pkt.version, pkt.ihl, pkt.tos, pkt.len, pkt.id, pkt.ttl, pkt.proto) == (
        4, 5, tos, 20 + len(payload), ident, ttl, proto)
    assert (pkt.src, pkt.dst, pkt.frag) == (ip4(src), ip4(dst), offset)
    assert (bool(pkt.flags.DF), bool(pkt.flags.MF), bool(pkt.flags.evil)) == (df, mf, False)
    assert pkt.chksum == scapy_checksum(pkt, inet.IP)


ip_options = st.lists(st.one_of(
    st.just(inet.IPOption_NOP()),
    st.lists(addr4, min_size=1, max_size=3).map(
        lambda rs: inet.IPOption_RR(routers=[ip4(r) for r in rs])),
    st.lists(addr4, min_size=1, max_size=2).map(
        lambda rs: inet.IPOption_LSRR(routers=[ip4(r) for r in rs])),
    u16.map(lambda v: inet.IPOption_Router_Alert(alert=v)),
), min_size=1, max_size=3)


@SCAPY
@given(addr4, addr4, u8, ip_options, payloads)
def test_ipv4_scapy_with_options_to_ustack(src: bytes, dst: bytes, ttl: int,
                                           options: list[Packet], payload: bytes) -> None:
    if sum(len(bytes(o)) for o in options) > 40:
        return  # more than IHL can say: scapy would write a wrapped-around IHL
    pkt = inet.IP(src=ip4(src), dst=ip4(dst), ttl=ttl, proto=253, id=99, flags="DF",
                  options=options) / Raw(payload)
    raw = bytes(pkt)
    hdr = ipv4.parse(raw)
    back = inet.IP(raw)
    assert hdr.header_length == back.ihl * 4 > 20
    assert raw[hdr.header_length:hdr.total_length] == payload
    assert (hdr.src, hdr.dst, hdr.ttl, hdr.protocol, hdr.ident) == (src, dst, ttl, 253, 99)
    assert hdr.dont_fragment and not hdr.more_fragments and hdr.total_length == back.len


# --- IPv6 and its extension headers -----------------------------------------------------

@SCAPY
@given(addr6, addr6, u8, st.integers(0, 0xFFFFF), u8, u8, st.binary(min_size=1, max_size=64))
def test_ipv6_both_ways(src: bytes, dst: bytes, tc: int, fl: int, nh: int, hlim: int,
                        payload: bytes) -> None:
    ours = ipv6.build(payload_length=len(payload), next_header=nh, src=src, dst=dst,
                      hop_limit=hlim, traffic_class=tc, flow_label=fl) + payload
    pkt = inet6.IPv6(ours)
    assert (pkt.version, pkt.tc, pkt.fl, pkt.plen, pkt.nh, pkt.hlim) == (
        6, tc, fl, len(payload), nh, hlim)
    assert (pkt.src, pkt.dst) == (ip6(src), ip6(dst))
    theirs = bytes(inet6.IPv6(src=ip6(src), dst=ip6(dst), tc=tc, fl=fl, nh=nh, hlim=hlim)
                   / Raw(payload))
    assert theirs == ours
    assert ipv6.parse(theirs) == (tc, fl, len(payload), nh, hlim, src, dst)


def _hbh_options() -> st.SearchStrategy[list[Packet]]:
    return st.lists(st.one_of(
        st.integers(0, 8).map(lambda n: inet6.PadN(optdata=bytes(n))),
        st.just(inet6.Pad1()),
        u16.map(lambda v: inet6.RouterAlert(value=v)),
        st.tuples(st.integers(2, 63).filter(lambda k: k != 5), st.binary(max_size=12)).map(
            lambda t: inet6.HBHOptUnknown(otype=t[0], optdata=t[1])),  # action bits 00
    ), max_size=4)


scapy_ext = st.one_of(
    _hbh_options().map(lambda o: ("dest", inet6.IPv6ExtHdrDestOpt(options=o))),
    st.lists(addr6, max_size=2).map(lambda a: ("route", inet6.IPv6ExtHdrRouting(
        addresses=[ip6(x) for x in a], segleft=0))),
)
scapy_upper = st.sampled_from([
    lambda: inet.UDP(sport=1, dport=2) / Raw(b"x"),
    lambda: inet.TCP(sport=3, dport=4),
    lambda: inet6.ICMPv6EchoRequest(id=5, seq=6),
    lambda: inet6.IPv6ExtHdrFragment(offset=3, m=1, id=0x1234) / Raw(b"y" * 8),
])


@SCAPY
@given(st.one_of(st.none(), _hbh_options()), st.lists(scapy_ext, max_size=3), scapy_upper)
def test_walk_extensions_over_scapy_chains(hbh: list[Packet] | None,
                                           exts: list[tuple[str, Packet]],
                                           upper: Any) -> None:
    layers: list[Packet] = [] if hbh is None else [inet6.IPv6ExtHdrHopByHop(options=hbh)]
    layers += [e for _, e in exts]
    pkt = inet6.IPv6(src="fd00::1", dst="fd00::2")
    for layer in layers:
        pkt = pkt / layer
    pkt = pkt / upper()
    raw = bytes(pkt)
    dissected = inet6.IPv6(raw)
    result = ipv6.walk_extensions(raw, raw[6])
    assert result.problem is None
    frag = dissected.getlayer(inet6.IPv6ExtHdrFragment)
    if frag is not None:
        assert result.protocol == IPProto.IPV6_FRAG
        assert result.offset == len(raw) - len(frag)
        assert result.fragment == ipv6.FragmentInfo(result.offset, frag.nh, frag.offset * 8,
                                                    bool(frag.m), frag.id)
    else:
        last_ext: Packet = dissected
        for _ in layers:
            last_ext = last_ext.payload
        assert result.protocol == last_ext.nh
        assert result.offset == len(raw) - len(last_ext.payload)


@SCAPY
@given(u8, st.integers(0, 0x1FFF), st.booleans(), u32)
def test_fragment_header_ustack_to_scapy(nh: int, offset: int, more: bool, ident: int) -> None:
    frag = ipv6.build_fragment_header(nh, offset * 8, more, ident)
    pkt = inet6.IPv6(ipv6_packet(bytes(16), bytes(16), IPProto.IPV6_FRAG, frag))
    hdr = pkt[inet6.IPv6ExtHdrFragment]
    assert (hdr.nh, hdr.offset, hdr.m, hdr.id, hdr.res1, hdr.res2) == (
        nh, offset, int(more), ident, 0, 0)


@pytest.mark.parametrize(("otype", "send"), [(0x40, None), (0x80, True), (0xC0, True)])
def test_unknown_option_pointer_matches_scapy(otype: int, send: bool | None) -> None:
    pkt = inet6.IPv6(src="fd00::1", dst="fd00::2") / inet6.IPv6ExtHdrDestOpt(options=[
        inet6.PadN(optdata=b"\x00\x00"), inet6.HBHOptUnknown(otype=otype | 7, optdata=b"ab")
    ]) / inet.UDP()
    raw = bytes(pkt)
    at = 40 + 2 + len(bytes(inet6.PadN(optdata=b"\x00\x00")))
    assert raw[at] == otype | 7 and inet6.IPv6(raw)[inet6.IPv6ExtHdrDestOpt].options[1].otype \
        == otype | 7
    if send is None:
        with pytest.raises(ParseError):
            ipv6.walk_extensions(raw, raw[6])
        return
    problem = ipv6.walk_extensions(raw, raw[6]).problem
    assert problem == ipv6.ParameterProblem(ipv6.PP_UNRECOGNIZED_OPTION, at, send)


# --- ICMPv4 -----------------------------------------------------------------------------

@SCAPY
@given(addr4, addr4, u16, u16, payloads)
def test_icmp4_echo_both_ways(src: bytes, dst: bytes, ident: int, seq: int,
                              payload: bytes) -> None:
    ours = icmp4.build(icmp4.ECHO_REQUEST, 0, ident, seq, payload)
    pkt = inet.IP(ipv4_packet(src, dst, IPProto.ICMP, ours))
    echo = pkt[inet.ICMP]
    assert (echo.type, echo.code, echo.id, echo.seq) == (8, 0, ident, seq)
    assert bytes(echo.payload) == payload
    assert echo.chksum == scapy_checksum(pkt, inet.ICMP)
    theirs = bytes(inet.ICMP(type=0, id=ident, seq=seq) / Raw(payload))
    assert icmp4.parse(theirs) == (icmp4.ECHO_REPLY, 0, ident, seq)


@SCAPY
@given(st.integers(68, 0xFFFF), u8)
def test_icmp4_fragmentation_needed_both_ways(mtu: int, ttl: int) -> None:
    quoted = ipv4_packet(b"\x0a\0\0\1", b"\x0a\0\0\2", IPProto.UDP, bytes(8))
    ours = icmp4.build(icmp4.DEST_UNREACHABLE, icmp4.FRAGMENTATION_NEEDED, 0, mtu, quoted)
    pkt = inet.IP(ipv4_packet(b"\x0a\0\0\3", b"\x0a\0\0\1", IPProto.ICMP, ours))
    err = pkt[inet.ICMP]
    assert (err.type, err.code, err.nexthopmtu) == (3, 4, mtu)
    assert err.chksum == scapy_checksum(pkt, inet.ICMP)
    assert pkt[inet.IPerror].dst == "10.0.0.2"
    theirs = bytes(inet.ICMP(type=3, code=4, nexthopmtu=mtu) / inet.IP(dst="10.0.0.2", ttl=ttl)
                   / inet.UDP())
    hdr = icmp4.parse(theirs)
    assert (hdr.type, hdr.code, hdr.rest_lo) == (3, 4, mtu)
    assert ipv4.parse(theirs[8:], quoted=True).ttl == ttl


# --- ICMPv6 and NDP ---------------------------------------------------------------------

@SCAPY
@given(addr6, addr6, u16, u16, payloads)
def test_icmp6_echo_both_ways(src: bytes, dst: bytes, ident: int, seq: int,
                              payload: bytes) -> None:
    ours = icmp6.build(icmp6.ECHO_REQUEST, 0, ident << 16 | seq, payload, src, dst)
    pkt = inet6.IPv6(ipv6_packet(src, dst, IPProto.ICMPV6, ours))
    echo = pkt[inet6.ICMPv6EchoRequest]
    assert (echo.type, echo.code, echo.id, echo.seq, echo.data) == (128, 0, ident, seq, payload)
    assert echo.cksum == scapy_checksum(pkt, inet6.ICMPv6EchoRequest, "cksum")
    theirs = bytes(inet6.IPv6(src=ip6(src), dst=ip6(dst))
                   / inet6.ICMPv6EchoReply(id=ident, seq=seq, data=payload))
    assert icmp6.parse(theirs[40:], src, dst) == (129, 0, ident << 16 | seq)


ICMP6_ERRORS: list[tuple[int, type[Packet], str]] = [
    (icmp6.DEST_UNREACHABLE, inet6.ICMPv6DestUnreach, ""),
    (icmp6.PACKET_TOO_BIG, inet6.ICMPv6PacketTooBig, "mtu"),
    (icmp6.TIME_EXCEEDED, inet6.ICMPv6TimeExceeded, ""),
    (icmp6.PARAMETER_PROBLEM, inet6.ICMPv6ParamProblem, "ptr"),
]


@SCAPY
@given(st.sampled_from(ICMP6_ERRORS), u8, u32, payloads)
def test_icmp6_errors_both_ways(error: tuple[int, type[Packet], str], code: int, rest: int,
                                payload: bytes) -> None:
    kind, cls, field = error
    src, dst = bytes.fromhex("fd00" + "00" * 13 + "01"), bytes.fromhex("fd00" + "00" * 13 + "02")
    quoted = ipv6_packet(dst, src, IPProto.UDP, udp.build_header(9, 7, payload, dst, src)
                         + payload)
    rest = rest if field else 0
    ours = icmp6.build(kind, code, rest, quoted, src, dst)
    pkt = inet6.IPv6(ipv6_packet(src, dst, IPProto.ICMPV6, ours))
    err = pkt[cls]
    assert (err.type, err.code) == (kind, code)
    if field:
        assert getattr(err, field) == rest
    assert err.cksum == scapy_checksum(pkt, cls, "cksum")
    assert pkt[inet6.IPerror6].dst == ip6(src)
    assert pkt[inet.UDPerror].sport == 9
    fields: dict[str, Any] = {field: rest} if field else {}  # scapy takes fields as **Any
    theirs = bytes(inet6.IPv6(src=ip6(src), dst=ip6(dst))
                   / cls(code=code, **fields) / Raw(quoted))
    assert icmp6.parse(theirs[40:], src, dst) == (kind, code, rest)


LL_A = bytes.fromhex("fe80000000000000000000fffe000001")
ALL_NODES = ipv6.ALL_NODES


@SCAPY
@given(mac, addr6, st.booleans(), st.booleans(), st.booleans())
def test_ndp_ns_na_ustack_to_scapy(lladdr: bytes, target: bytes, r: bool, s: bool,
                                   o: bool) -> None:
    ns = icmp6.build(icmp6.NEIGHBOR_SOLICITATION, 0, 0,
                     ndp.neighbor_solicitation_body(target, lladdr), LL_A, ALL_NODES)
    pkt = inet6.IPv6(ipv6_packet(LL_A, ALL_NODES, IPProto.ICMPV6, ns, hop_limit=255))
    assert pkt[inet6.ICMPv6ND_NS].tgt == ip6(target)
    assert pkt[inet6.ICMPv6NDOptSrcLLAddr].lladdr == mac_text(lladdr)
    assert pkt[inet6.ICMPv6ND_NS].cksum == scapy_checksum(pkt, inet6.ICMPv6ND_NS, "cksum")
    body = target + ndp.link_addr_option(ndp.OPT_TARGET_LINK_ADDR, lladdr)
    na = icmp6.build(icmp6.NEIGHBOR_ADVERTISEMENT, 0,
                     ndp.neighbor_advertisement_rest(r, s, o), body, LL_A, ALL_NODES)
    pkt = inet6.IPv6(ipv6_packet(LL_A, ALL_NODES, IPProto.ICMPV6, na, hop_limit=255))
    adv = pkt[inet6.ICMPv6ND_NA]
    assert (adv.R, adv.S, adv.O, adv.tgt, adv.res) == (r, s, o, ip6(target), 0)
    assert pkt[inet6.ICMPv6NDOptDstLLAddr].lladdr == mac_text(lladdr)
    assert adv.cksum == scapy_checksum(pkt, inet6.ICMPv6ND_NA, "cksum")


@SCAPY
@given(mac, addr6, st.booleans(), st.booleans(), st.booleans())
def test_ndp_ns_na_scapy_to_ustack(lladdr: bytes, target: bytes, r: bool, s: bool,
                                   o: bool) -> None:
    ns = bytes(inet6.ICMPv6ND_NS(tgt=ip6(target))
               / inet6.ICMPv6NDOptSrcLLAddr(lladdr=mac_text(lladdr)))
    assert ndp.parse_neighbor_solicitation(ns) == (target, ndp.Options(source_link_addr=lladdr))
    na = bytes(inet6.ICMPv6ND_NA(R=r, S=s, O=o, tgt=ip6(target))
               / inet6.ICMPv6NDOptDstLLAddr(lladdr=mac_text(lladdr)))
    assert ndp.parse_neighbor_advertisement(na) == (r, s, o, target,
                                                    ndp.Options(target_link_addr=lladdr))


prefix_infos = st.builds(ndp.PrefixInfo, addr6, st.integers(0, 128), st.booleans(),
                         st.booleans(), u32, u32)


@SCAPY
@given(u8, st.booleans(), st.booleans(), u16, u32, u32, mac, prefix_infos,
       st.integers(1280, 9000), st.lists(addr6, min_size=1, max_size=3), u32)
def test_ndp_ra_both_ways(hop_limit: int, managed: bool, other: bool, lifetime: int,
                          reachable: int, retrans: int, lladdr: bytes, info: ndp.PrefixInfo,
                          mtu: int, dns: list[bytes], dns_lifetime: int) -> None:
    options = (ndp.link_addr_option(ndp.OPT_SOURCE_LINK_ADDR, lladdr) + ndp.prefix_option(info)
               + ndp.mtu_option(mtu) + ndp.rdnss_option(tuple(dns), dns_lifetime))
    msg = icmp6.build(icmp6.ROUTER_ADVERTISEMENT, 0,
                      ndp.router_advertisement_rest(hop_limit, managed, other, lifetime),
                      struct.pack("!II", reachable, retrans) + options, LL_A, ALL_NODES)
    pkt = inet6.IPv6(ipv6_packet(LL_A, ALL_NODES, IPProto.ICMPV6, msg, hop_limit=255))
    ra = pkt[inet6.ICMPv6ND_RA]
    assert (ra.chlim, ra.M, ra.O, ra.routerlifetime, ra.reachabletime, ra.retranstimer) == (
        hop_limit, managed, other, lifetime, reachable, retrans)
    assert ra.cksum == scapy_checksum(pkt, inet6.ICMPv6ND_RA, "cksum")
    assert pkt[inet6.ICMPv6NDOptSrcLLAddr].lladdr == mac_text(lladdr)
    pi = pkt[inet6.ICMPv6NDOptPrefixInfo]
    assert (pi.prefixlen, pi.L, pi.A, pi.validlifetime, pi.preferredlifetime, pi.prefix) == (
        info.length, info.on_link, info.autonomous, info.valid_lifetime,
        info.preferred_lifetime, ip6(info.prefix))
    assert pkt[inet6.ICMPv6NDOptMTU].mtu == mtu
    rdnss = pkt[inet6.ICMPv6NDOptRDNSS]
    assert (rdnss.len, rdnss.lifetime, rdnss.dns) == (1 + 2 * len(dns), dns_lifetime,
                                                      [ip6(a) for a in dns])
    # and scapy's own encoding of the same advertisement
    theirs = bytes(
        inet6.ICMPv6ND_RA(chlim=hop_limit, M=managed, O=other, prf=0,
                          routerlifetime=lifetime, reachabletime=reachable,
                          retranstimer=retrans)
        / inet6.ICMPv6NDOptSrcLLAddr(lladdr=mac_text(lladdr))
        / inet6.ICMPv6NDOptPrefixInfo(prefixlen=info.length, L=info.on_link,
                                      A=info.autonomous, validlifetime=info.valid_lifetime,
                                      preferredlifetime=info.preferred_lifetime,
                                      prefix=ip6(info.prefix))
        / inet6.ICMPv6NDOptMTU(mtu=mtu)
        / inet6.ICMPv6NDOptRDNSS(lifetime=dns_lifetime, dns=[ip6(a) for a in dns]))
    assert ndp.parse_router_advertisement(theirs) == ndp.RouterAdvertisement(
        hop_limit, managed, other, lifetime, reachable, retrans,
        ndp.Options(source_link_addr=lladdr, prefixes=(info,), mtu=mtu, rdnss=tuple(dns),
                    rdnss_lifetime=dns_lifetime))
    assert theirs[4:] == msg[4:]


def test_ndp_rs_scapy_to_ustack() -> None:
    raw = bytes(inet6.ICMPv6ND_RS() / inet6.ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:09"))
    assert ndp.parse_router_solicitation(raw).source_link_addr == bytes.fromhex("020000000009")


# --- UDP --------------------------------------------------------------------------------

@SCAPY
@given(st.booleans(), u16, u16, payloads)
def test_udp_both_ways(v6: bool, sport: int, dport: int, payload: bytes) -> None:
    if v6:
        src, dst = bytes.fromhex("fd00" + "00" * 13 + "01"), bytes.fromhex("fd00" + "11" * 14)
        l4 = udp.build_header(sport, dport, payload, src, dst) + payload
        pkt: Packet = inet6.IPv6(ipv6_packet(src, dst, IPProto.UDP, l4))
        ip_theirs: Packet = inet6.IPv6(src=ip6(src), dst=ip6(dst))
        offset = 40
    else:
        src, dst = b"\x0a\0\0\1", b"\xc0\xa8\x01\x02"
        l4 = udp.build_header(sport, dport, payload, src, dst) + payload
        pkt = inet.IP(ipv4_packet(src, dst, IPProto.UDP, l4))
        ip_theirs = inet.IP(src=ip4(src), dst=ip4(dst))
        offset = 20
    dgram = pkt[inet.UDP]
    assert (dgram.sport, dgram.dport, dgram.len, bytes(dgram.payload)) == (
        sport, dport, 8 + len(payload), payload)
    assert dgram.chksum == scapy_checksum(pkt, inet.UDP)
    theirs = bytes(ip_theirs / inet.UDP(sport=sport, dport=dport) / Raw(payload))
    parsed = udp.parse(theirs[offset:], src, dst)
    assert parsed == (sport, dport, 8 + len(payload), dgram.chksum)
    assert theirs[offset:] == l4


# --- TCP --------------------------------------------------------------------------------

def scapy_options(options: list[tuple[Any, Any]]) -> tcp.TCPOptions:
    """scapy's dissected option list, in ustack's terms (what a reader would conclude)."""
    found: dict[str, Any] = {}
    for name, value in options:
        if name == "MSS":
            found["mss"] = value
        elif name == "WScale":
            found["wscale"] = value
        elif name == "SAckOK":
            found["sack_permitted"] = True
        elif name == "SAck":
            found["sack_blocks"] = tuple(zip(value[::2], value[1::2], strict=True))
        elif name == "Timestamp":
            found["timestamp"] = tuple(value)
        elif name == "TFO":
            cookie = value if isinstance(value, bytes) else b"".join(
                struct.pack("!I", v) for v in value)
            found["fastopen"] = cookie
        elif name == 254 and value[:2] == b"\xf9\x89":
            found["fastopen"] = value[2:]
            found["fastopen_experimental"] = True
    return tcp.TCPOptions(**found)


@st.composite
def option_sets(draw: st.DrawFn) -> tcp.TCPOptions:
    fastopen = draw(st.one_of(st.none(), st.binary(max_size=8).map(lambda b: b[:len(b) // 4 * 4])))
    return tcp.TCPOptions(
        mss=draw(st.one_of(st.none(), u16)),
        wscale=draw(st.one_of(st.none(), st.integers(0, 14))),
        sack_permitted=draw(st.booleans()),
        sack_blocks=tuple(draw(st.lists(st.tuples(u32, u32), max_size=2))),
        timestamp=draw(st.one_of(st.none(), st.tuples(u32, u32))),
        fastopen=fastopen,
        fastopen_experimental=fastopen is not None and draw(st.booleans()))


@SCAPY
@given(option_sets(), st.sampled_from(["linux", "freebsd"]), u16, u16, u32, u32,
       st.integers(0, 255), u16, payloads)
def test_tcp_ustack_to_scapy(opts: tcp.TCPOptions, order: str, sport: int, dport: int,
                             seq: int, ack: int, flags: int, window: int,
                             payload: bytes) -> None:
    try:
        options = tcp.build_options(opts, order)
    except ValueError:
        return
    src, dst = b"\x0a\0\0\1", b"\x0a\0\0\2"
    seg = bytearray(20 + len(options))
    tcp.build_header_into(seg, 0, src_port=sport, dst_port=dport, seq=seq, ack=ack,
                          flags=flags, window=window, options=options)
    tcp.fill_checksum(seg, src, dst, payload)
    pkt = inet.IP(ipv4_packet(src, dst, IPProto.TCP, bytes(seg) + payload))
    t = pkt[inet.TCP]
    assert (t.sport, t.dport, t.seq, t.ack, t.dataofs * 4, int(t.flags) & 0xFF, t.window) == (
        sport, dport, seq, ack, len(seg), flags, window)
    assert bytes(t.payload) == payload
    assert t.chksum == scapy_checksum(pkt, inet.TCP)
    assert scapy_options(t.options) == opts


scapy_option = st.one_of(
    u16.map(lambda v: ("MSS", v)),
    st.integers(0, 14).map(lambda v: ("WScale", v)),
    st.just(("SAckOK", b"")),
    st.tuples(u32, u32).map(lambda t: ("Timestamp", t)),
    st.lists(u32, min_size=2, max_size=4).map(lambda v: ("SAck", tuple(v[:len(v) // 2 * 2]))),
    st.just(("NOP", None)),
    st.binary(max_size=6).map(lambda c: (254, b"\xf9\x89" + c)),
    st.binary(max_size=4).map(lambda c: (254, b"\x34\x56" + c)),  # some other experiment
    # unknown kinds (not 29, TCP-AO: scapy's own dissector gives up on a short one)
    st.tuples(st.sampled_from([6, 7, 9, 19, 28, 30, 69]), st.binary(max_size=6)),
)


@SCAPY
@given(st.lists(scapy_option, max_size=5).filter(
    lambda os: len({o[0] for o in os if o[0] != "NOP"}) == len([o for o in os if o[0] != "NOP"])),
    payloads)
@pytest.mark.parametrize("v6", [False, True])
def test_tcp_scapy_to_ustack(v6: bool, options: list[tuple[Any, Any]], payload: bytes) -> None:
    """Each option kind at most once, in any order, with unknown kinds mixed in."""
    segment = inet.TCP(sport=1234, dport=80, seq=5, ack=6, flags="SA", options=options)
    ip_layer: Packet = (inet6.IPv6(src="fd00::1", dst="fd00::2") if v6
                        else inet.IP(src="10.0.0.1", dst="10.0.0.2"))
    if len(bytes(segment)) > 60:
        return  # more than 40 bytes of options: no valid data offset for scapy to write
    raw = bytes(ip_layer / segment / Raw(payload))
    dissected = ip_layer.__class__(raw)[inet.TCP]
    body = raw[40:] if v6 else raw[20:]
    src, dst = (bytes(ipaddress.ip_address(a).packed) for a in (
        ("fd00::1", "fd00::2") if v6 else ("10.0.0.1", "10.0.0.2")))
    hdr = tcp.parse(body, src, dst)
    assert (hdr.src_port, hdr.dst_port, hdr.seq, hdr.ack, hdr.flags) == (1234, 80, 5, 6, 0x12)
    assert hdr.header_length == dissected.dataofs * 4
    assert tcp.parse_options(body, 20, hdr.header_length) == scapy_options(dissected.options)
    assert body[hdr.header_length:] == payload


# --- pcap -------------------------------------------------------------------------------

def test_pcap_read_by_scapy(tmp_path: Any) -> None:
    frames = [bytes(Ether(dst="02:00:00:00:00:02") / inet.IP(dst="10.0.0.2") / inet.UDP()
                    / Raw(bytes([i]) * i)) for i in range(1, 6)]
    path = tmp_path / "t.pcap"
    with open(path, "wb") as stream:
        writer = pcap.PcapWriter(stream)
        for i, frame in enumerate(frames):
            writer.write(1000.0 + i * 0.25 + 1e-6, frame)
    packets = rdpcap(str(path))
    assert [bytes(p) for p in packets] == frames
    assert [round(float(p.time), 6) for p in packets] == [
        round(1000.0 + i * 0.25 + 1e-6, 6) for i in range(5)]
    truncated = io.BytesIO()
    writer = pcap.PcapWriter(truncated, pcap.LINKTYPE_ETHERNET, snaplen=30)
    writer.write(5.0, frames[-1])
    path.write_bytes(truncated.getvalue())
    (short,) = rdpcap(str(path))
    assert bytes(short) == frames[-1][:30] and short.wirelen == len(frames[-1])
