# SPDX-License-Identifier: MIT
"""Neighbor Discovery (RFC 4861) and stateless autoconfiguration (RFC 4862, RFC 8106)."""

from __future__ import annotations

import ipaddress
import socket
import struct

from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.packet import Raw

from tests.unit.stackframes import UDP, Ether, frames, inject, mac_text, packed, record
from ustack.network.ipv6 import IPv6Protocol
from ustack.nic import NIC
from ustack.testing.pair import StackPair, make_pair
from ustack.wire import icmp6
from ustack.wire import ndp as ndp_wire
from ustack.wire.proto import EtherType

#: an autoconfigured address is tentative for DupAddrDetectTransmits x RetransTimer (1 s)
DAD_TIME = 2.01  # RFC 4862 5.4.2: up to 1 s delay (multicast RA), then RetransTimer
ROUTER_MAC = "02:00:00:00:aa:01"
ROUTER_LL = "fe80::1"
PREFIX = "2001:db8:1::"


def interface_id(mac: bytes) -> bytes:
    """RFC 4291 appendix A: modified EUI-64, written out here rather than borrowed."""
    return bytes([mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]])


def slaac_address(prefix: str, mac: bytes) -> bytes:
    return packed(prefix)[:8] + interface_id(mac)


def link_local(mac: bytes) -> str:
    return str(ipaddress.ip_address(bytes.fromhex("fe80000000000000") + interface_id(mac)))


def ndp_frame(src_mac: str, dst_mac: str, src: str, dst: str, kind: int, rest: int,
              body: bytes, hlim: int = 255) -> bytes:
    message = icmp6.build(kind, 0, rest, body, packed(src), packed(dst))
    return bytes(Ether(src=src_mac, dst=dst_mac) / IPv6(src=src, dst=dst, hlim=hlim, nh=58)
                 / Raw(message))


def router_advertisement(*, lifetime: int = 1800, prefixes: tuple[ndp_wire.PrefixInfo, ...] = (),
                         mtu: int | None = None, dns: tuple[str, ...] = (),
                         src: str = ROUTER_LL, hlim: int = 255) -> bytes:
    options = ndp_wire.link_addr_option(ndp_wire.OPT_SOURCE_LINK_ADDR,
                                        bytes.fromhex(ROUTER_MAC.replace(":", "")))
    for info in prefixes:
        options += ndp_wire.prefix_option(info)
    if mtu is not None:
        options += ndp_wire.mtu_option(mtu)
    if dns:
        options += ndp_wire.rdnss_option(tuple(packed(d) for d in dns), 600)
    rest = ndp_wire.router_advertisement_rest(64, False, False, lifetime)
    body = struct.pack("!II", 0, 0) + options  # reachable time, retrans timer: unspecified
    return ndp_frame(ROUTER_MAC, "33:33:00:00:00:01", src, "ff02::1",
                     icmp6.ROUTER_ADVERTISEMENT, rest, body, hlim)


def prefix(text: str = PREFIX, length: int = 64, on_link: bool = True,
           autonomous: bool = True, valid: int = 86400, preferred: int = 14400,
           ) -> ndp_wire.PrefixInfo:
    return ndp_wire.PrefixInfo(packed(text), length, on_link, autonomous, valid, preferred)


def neighbor_solicitation(pair: StackPair, src: str, dst: str, target: str,
                          slla: str | None, hlim: int = 255, src_mac: str = "02:00:00:00:00:99",
                          dst_mac: str | None = None) -> bytes:
    body = ndp_wire.neighbor_solicitation_body(
        packed(target), bytes.fromhex(slla.replace(":", "")) if slla else None)
    if dst_mac is None:
        dst_mac = "33:33:" + ":".join(f"{b:02x}" for b in packed(dst)[12:])
    return ndp_frame(src_mac, dst_mac, src, dst, icmp6.NEIGHBOR_SOLICITATION, 0, body, hlim)


def neighbor_advertisement(target: str, tlla: str, *, solicited: bool, override: bool,
                           dst: str = "fd00::2", dst_mac: str = "", hlim: int = 255,
                           src: str | None = None) -> bytes:
    rest = ndp_wire.neighbor_advertisement_rest(False, solicited, override)
    body = packed(target) + ndp_wire.link_addr_option(
        ndp_wire.OPT_TARGET_LINK_ADDR, bytes.fromhex(tlla.replace(":", "")))
    return ndp_frame(tlla, dst_mac or "33:33:00:00:00:01", src or target, dst,
                     icmp6.NEIGHBOR_ADVERTISEMENT, rest, body, hlim)


def cached(nic: NIC, addr: str) -> bytes | None:
    cache = nic.neighbor_cache(EtherType.IPV6)
    assert cache is not None
    for entry in cache.entries():
        if entry.addr == packed(addr):
            return entry.link_addr or b""
    return None


def ndp_of(pair: StackPair, side: str = "b") -> IPv6Protocol:
    stack = pair.a if side == "a" else pair.b
    proto = stack.network_protocols[EtherType.IPV6]
    assert isinstance(proto, IPv6Protocol)
    return proto


# --- neighbor solicitation and advertisement --------------------------------------------------

def test_rfc4861_7_2_resolution_by_solicitation_and_solicited_advertisement(
        pair: StackPair) -> None:
    rx = pair.b.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx.bind(("fd00::2", 5000))
    record(pair)
    pair.a.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"hi", ("fd00::2", 5000))
    pair.run(0.01)
    a_mac, b_mac = mac_text(pair.link_a.link_address), mac_text(pair.link_b.link_address)
    (ns,) = frames(pair.link_a, ICMPv6ND_NS)
    assert ns.dst == "33:33:ff:00:00:02"  # RFC 2464 7: the solicited-node group's MAC
    assert ns[IPv6].dst == "ff02::1:ff00:2"  # RFC 4291 2.7.1
    assert ns[IPv6].src == "fd00::1"
    assert ns[IPv6].hlim == 255
    assert ns[ICMPv6ND_NS].tgt == "fd00::2"
    assert ns[ICMPv6NDOptSrcLLAddr].lladdr == a_mac
    (na,) = frames(pair.link_b, ICMPv6ND_NA)
    assert na.dst == a_mac and na[IPv6].dst == "fd00::1" and na[IPv6].src == "fd00::2"
    assert na[IPv6].hlim == 255
    assert (na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (0, 1, 1)
    assert na[ICMPv6ND_NA].tgt == "fd00::2"
    assert na[ICMPv6NDOptDstLLAddr].lladdr == b_mac
    (data,) = frames(pair.link_a, UDP)
    assert data.dst == b_mac
    rx.settimeout(0)
    assert rx.recvfrom(100) == (b"hi", ("fd00::1", data[UDP].sport, 0, 0))
    assert cached(pair.nic_a, "fd00::2") == pair.link_b.link_address
    # RFC 4861 7.2.3: the solicitation's source link-layer option taught b where a is
    assert cached(pair.nic_b, "fd00::1") == pair.link_a.link_address


def test_emitted_ndp_checksums_are_valid(pair: StackPair) -> None:
    record(pair)
    pair.a.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"hi", ("fd00::2", 5000))
    pair.run(0.01)
    checked = 0
    for frame in frames(pair.link_a, ICMPv6ND_NS) + frames(pair.link_b, ICMPv6ND_NA):
        layer = frame[ICMPv6ND_NS] if frame.haslayer(ICMPv6ND_NS) else frame[ICMPv6ND_NA]
        sent = layer.cksum
        layer.cksum = None
        assert Ether(bytes(frame))[layer.__class__].cksum == sent
        checked += 1
    assert checked == 2


def test_rfc4861_7_1_1_solicitation_with_hop_limit_below_255_is_dropped(
        pair: StackPair) -> None:
    record(pair)
    inject(pair.link_b, neighbor_solicitation(pair, "fd00::9", "ff02::1:ff00:2", "fd00::2",
                                              "02:00:00:00:00:99", hlim=254))
    pair.run(0.01)
    assert pair.b.stats["ndp.drop.hop_limit_invalid"] == 1
    assert frames(pair.link_b, ICMPv6ND_NA) == []
    assert cached(pair.nic_b, "fd00::9") is None
    # the same solicitation with hop limit 255 is answered
    inject(pair.link_b, neighbor_solicitation(pair, "fd00::9", "ff02::1:ff00:2", "fd00::2",
                                              "02:00:00:00:00:99"))
    pair.run(0.01)
    (na,) = frames(pair.link_b, ICMPv6ND_NA)
    assert na[IPv6].dst == "fd00::9" and na.dst == "02:00:00:00:00:99"


def test_rfc4861_7_1_2_advertisement_with_hop_limit_below_255_is_dropped(
        pair: StackPair) -> None:
    pair.b.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"x", ("fd00::9", 5000))
    pair.run(0.01)
    assert cached(pair.nic_b, "fd00::9") == b""  # INCOMPLETE
    inject(pair.link_b, neighbor_advertisement("fd00::9", "02:00:00:00:00:99", solicited=True,
                                               override=True, dst_mac=mac_text(
                                                   pair.link_b.link_address), hlim=64))
    pair.run(0.01)
    assert pair.b.stats["ndp.drop.hop_limit_invalid"] == 1
    assert cached(pair.nic_b, "fd00::9") == b""


def test_rfc4861_7_2_5_override_flag_decides_whether_a_known_address_changes(
        pair: StackPair) -> None:
    pair.b.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"x", ("fd00::1", 5000))
    pair.run(0.01)
    original = pair.link_a.link_address
    assert cached(pair.nic_b, "fd00::1") == original
    inject(pair.link_b, neighbor_advertisement("fd00::1", "02:00:00:00:00:77", solicited=False,
                                               override=False, dst="ff02::1"))
    pair.run(0.01)
    assert cached(pair.nic_b, "fd00::1") == original  # O clear: not replaced
    inject(pair.link_b, neighbor_advertisement("fd00::1", "02:00:00:00:00:77", solicited=False,
                                               override=True, dst="ff02::1"))
    pair.run(0.01)
    assert cached(pair.nic_b, "fd00::1") == bytes.fromhex("020000000077")


def test_rfc4861_7_2_5_unsolicited_advertisement_creates_no_entry(pair: StackPair) -> None:
    inject(pair.link_b, neighbor_advertisement("fd00::42", "02:00:00:00:00:42", solicited=False,
                                               override=True, dst="ff02::1"))
    pair.run(0.01)
    assert cached(pair.nic_b, "fd00::42") is None


def test_rfc4861_7_1_2_solicited_advertisement_to_multicast_is_invalid(pair: StackPair) -> None:
    pair.b.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"x", ("fd00::9", 5000))
    pair.run(0.01)
    inject(pair.link_b, neighbor_advertisement("fd00::9", "02:00:00:00:00:99", solicited=True,
                                               override=True, dst="ff02::1"))
    pair.run(0.01)
    assert pair.b.stats["ndp.drop.bad_message"] == 1
    assert cached(pair.nic_b, "fd00::9") == b""


def test_advertisement_for_our_own_address_is_a_conflict(pair: StackPair) -> None:
    inject(pair.link_b, neighbor_advertisement("fd00::2", "02:00:00:00:00:66", solicited=False,
                                               override=True, dst="ff02::1"))
    pair.run(0.01)
    assert pair.b.stats["ndp.address_conflict"] == 1
    assert cached(pair.nic_b, "fd00::2") is None


def test_rfc4861_7_2_4_dad_probe_is_answered_to_all_nodes(pair: StackPair) -> None:
    record(pair)
    inject(pair.link_b, neighbor_solicitation(pair, "::", "ff02::1:ff00:2", "fd00::2", None))
    pair.run(0.01)
    (na,) = frames(pair.link_b, ICMPv6ND_NA)
    assert na.dst == "33:33:00:00:00:01"
    assert na[IPv6].dst == "ff02::1" and na[IPv6].src == "fd00::2" and na[IPv6].hlim == 255
    assert na[ICMPv6ND_NA].S == 0 and na[ICMPv6ND_NA].tgt == "fd00::2"
    assert na[ICMPv6NDOptDstLLAddr].lladdr == mac_text(pair.link_b.link_address)
    assert cached(pair.nic_b, "::") is None


def test_rfc4861_7_1_1_dad_probe_with_a_link_layer_option_is_invalid(pair: StackPair) -> None:
    record(pair)
    inject(pair.link_b, neighbor_solicitation(pair, "::", "ff02::1:ff00:2", "fd00::2",
                                              "02:00:00:00:00:99"))
    inject(pair.link_b, neighbor_solicitation(pair, "fd00::9", "ff02::1:ff00:2",
                                              "ff02::1", "02:00:00:00:00:99"))  # multicast target
    pair.run(0.01)
    assert pair.b.stats["ndp.drop.bad_message"] == 2
    assert frames(pair.link_b, ICMPv6ND_NA) == []


def test_rfc4861_7_2_3_solicitation_for_another_target_is_discarded(pair: StackPair) -> None:
    """The target check comes first: a solicitation that is not for us teaches us nothing."""
    record(pair)
    inject(pair.link_b, neighbor_solicitation(pair, "fd00::9", "fd00::2", "fd00::77",
                                              "02:00:00:00:00:99",
                                              dst_mac=mac_text(pair.link_b.link_address)))
    pair.run(0.01)
    assert frames(pair.link_b, ICMPv6ND_NA) == []
    assert cached(pair.nic_b, "fd00::9") is None


# --- router discovery and SLAAC ---------------------------------------------------------------

def test_rfc4861_6_3_7_router_solicitations_at_nic_start() -> None:
    pair = make_pair(settle=False)
    record(pair)
    pair.run(20.0)
    solicitations = frames(pair.link_a, ICMPv6ND_RS)
    assert len(solicitations) == 3  # MAX_RTR_SOLICITATIONS
    for rs in solicitations:
        assert rs.dst == "33:33:00:00:00:02"
        assert rs[IPv6].dst == "ff02::2" and rs[IPv6].hlim == 255
        assert rs[IPv6].src == link_local(pair.link_a.link_address)
        assert rs[ICMPv6NDOptSrcLLAddr].lladdr == mac_text(pair.link_a.link_address)
    # a host ignores solicitations from other hosts: b sent no advertisement
    assert frames(pair.link_b, ICMPv6ND_RS) and pair.b.stats["ndp.rx_ra"] == 0


def test_rfc4861_6_3_7_no_more_solicitations_once_a_router_advertised() -> None:
    pair = make_pair(settle=False)
    record(pair)
    pair.run(1.0)
    assert len(frames(pair.link_b, ICMPv6ND_RS)) == 1
    inject(pair.link_b, router_advertisement())
    pair.run(20.0)
    assert len(frames(pair.link_b, ICMPv6ND_RS)) == 1
    assert len(frames(pair.link_a, ICMPv6ND_RS)) == 3  # a heard no router


def test_rfc4862_slaac_router_advertisement_configures_the_host(pair: StackPair) -> None:
    inject(pair.link_b, router_advertisement(prefixes=(prefix(),), mtu=1400,
                                             dns=("2001:db8::53",)))
    pair.run(DAD_TIME)
    b_mac = pair.link_b.link_address
    address = slaac_address(PREFIX, b_mac)
    assert pair.nic_b.has_address(address)
    assert pair.b.stats["ndp.rx_ra"] == 1 and pair.b.stats["ndp.slaac_address"] == 1
    # the prefix is on-link (L flag)
    on_link = pair.b.find_route(packed("2001:db8:1::99"))
    assert on_link.next_hop == packed("2001:db8:1::99")
    assert on_link.local_addr == address
    # the router is the default router; RFC 8106: its DNS server is recorded
    off_link = pair.b.find_route(packed("2001:db8:99::1"))
    assert off_link.next_hop == packed(ROUTER_LL)
    assert ndp_of(pair).ndp.dns_servers == [packed("2001:db8::53")]
    # RFC 4861 6.3.4: the source link-layer option fills the router's cache entry
    assert cached(pair.nic_b, ROUTER_LL) == bytes.fromhex(ROUTER_MAC.replace(":", ""))


def test_rfc4861_6_3_4_mtu_option_limits_the_packets_sent(pair: StackPair) -> None:
    for link in (pair.link_a, pair.link_b):
        inject(link, router_advertisement(prefixes=(prefix(),), mtu=1400))
    pair.run(DAD_TIME)
    a_addr = str(ipaddress.ip_address(slaac_address(PREFIX, pair.link_a.link_address)))
    rx = pair.a.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx.bind((a_addr, 5000))
    rx.settimeout(1.0)
    record(pair)
    pair.b.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"m" * 1450, (a_addr, 5000))
    data, _ = rx.recvfrom(2000)
    assert data == b"m" * 1450
    sent = [f for f in frames(pair.link_b, IPv6) if f[IPv6].nh != 58]
    assert len(sent) == 2
    assert max(len(f[IPv6]) for f in sent) <= 1400


def test_slaac_addresses_work_end_to_end(pair: StackPair) -> None:
    for link in (pair.link_a, pair.link_b):
        inject(link, router_advertisement(prefixes=(prefix(),)))
    pair.run(DAD_TIME)
    b_addr = str(ipaddress.ip_address(slaac_address(PREFIX, pair.link_b.link_address)))
    a_addr = str(ipaddress.ip_address(slaac_address(PREFIX, pair.link_a.link_address)))
    rx = pair.b.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx.bind(("::", 6000))
    rx.settimeout(1.0)
    pair.a.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"slaac", (b_addr, 6000))
    data, source = rx.recvfrom(100)
    assert data == b"slaac" and source[0] == a_addr


def test_rfc4862_5_5_3_prefixes_that_give_no_address(pair: StackPair) -> None:
    inject(pair.link_b, router_advertisement(prefixes=(
        prefix("2001:db8:2::", autonomous=False),  # on-link only
        prefix("2001:db8:3::", length=48),  # not 64 bits: no EUI-64 address
        prefix("2001:db8:4::", preferred=9999, valid=100),  # preferred > valid: ignored
        prefix("fe80::"),  # link-local prefix: ignored
    )))
    pair.run(0.01)
    assert pair.b.stats["ndp.slaac_address"] == 0
    assert [a.addr[:2] for a in pair.nic_b.addresses[16]] == [b"\xfe\x80", b"\xfd\x00"]
    assert pair.b.find_route(packed("2001:db8:2::5")).next_hop == packed("2001:db8:2::5")
    assert pair.b.find_route(packed("2001:db8:3::5")).next_hop == packed("2001:db8:3::5")
    # the /64 that was ignored is reached through the router, not on-link
    assert pair.b.find_route(packed("2001:db8:4::5")).next_hop == packed(ROUTER_LL)


def test_rfc4861_6_1_2_invalid_router_advertisements_are_dropped(pair: StackPair) -> None:
    inject(pair.link_b, router_advertisement(prefixes=(prefix(),), src="fd00::1"))
    inject(pair.link_b, router_advertisement(prefixes=(prefix(),), hlim=254))
    pair.run(0.01)
    assert pair.b.stats["ndp.drop.bad_address"] == 1
    assert pair.b.stats["ndp.drop.hop_limit_invalid"] == 1
    assert pair.b.stats["ndp.rx_ra"] == 0
    assert not pair.nic_b.has_address(slaac_address(PREFIX, pair.link_b.link_address))


def test_router_lifetime_zero_is_not_a_default_router(pair: StackPair) -> None:
    inject(pair.link_b, router_advertisement(lifetime=0, prefixes=(prefix(),)))
    pair.run(DAD_TIME)
    assert pair.nic_b.has_address(slaac_address(PREFIX, pair.link_b.link_address))
    assert pair.b.routes.lookup(packed("2001:db8:99::1")) is None


def test_rfc4861_6_3_4_router_lifetime_zero_withdraws_the_default_router(
        pair: StackPair) -> None:
    inject(pair.link_b, router_advertisement())
    pair.run(0.01)
    assert pair.b.find_route(packed("2001:db8:99::1")).next_hop == packed(ROUTER_LL)
    inject(pair.link_b, router_advertisement(lifetime=0))
    pair.run(0.01)
    assert pair.b.routes.lookup(packed("2001:db8:99::1")) is None
