# SPDX-License-Identifier: MIT
"""Router advertisements from the gateway (RFC 4861 6.2, RFC 8106): what they carry, when
they go out, how solicitations are answered, and a ustack guest (a SLAAC host)
configuring its address, default route and DNS server from them."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from tests.unit.guest_link import GuestLink, make_guest_link
from ustack.forward import ra
from ustack.network.ipv6 import IPv6Protocol
from ustack.route import RouteEntry
from ustack.wire import ipv6 as ip_wire
from ustack.wire.proto import EtherType

CLIENT_MAC = "02:00:00:00:99:02"
CLIENT_LL = "fe80::99:2"
GW_LL = ipaddress.IPv6Address("fe80::2").packed


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def advertisements(link: GuestLink) -> list[Packet]:
    return [f for f in map(Ether, link.link_gw.written or []) if f.haslayer(ICMPv6ND_RA)]


def eui64_address(prefix: str, mac: bytes) -> bytes:
    iid = bytes([mac[0] ^ 2, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]])
    return ipaddress.IPv6Address(prefix).packed[:8] + iid


def rs_frame(src: str = CLIENT_LL, hlim: int = 255, slla: bool = True) -> bytes:
    pkt = (Ether(src=CLIENT_MAC, dst="33:33:00:00:00:02") / IPv6(src=src, dst="ff02::2", hlim=hlim)
           / ICMPv6ND_RS())
    if slla:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC)
    return bytes(pkt)


def times_of_advertisements(link: GuestLink, until: float) -> list[float]:
    """Run the clock to ``until`` (seconds from now), noting when each RA is written."""
    times = []
    end = link.clock.now() + until
    while link.clock.now() < end:
        seen = len(advertisements(link))

        def another(seen: int = seen) -> bool:
            return len(advertisements(link)) > seen

        if link.clock.run_until(another, end - link.clock.now()):
            times.append(link.clock.now())
    return times


# --- what an advertisement carries (RFC 4861 4.2, 4.6; RFC 8106 5.1) --------------------------

def test_advertisement_fields() -> None:
    link = make_guest_link(start=False)
    link.record()
    link.services.start()
    link.run(0.01)
    [frame] = advertisements(link)
    assert frame[Ether].dst == "33:33:00:00:00:01"
    assert frame[Ether].src == mac_text(link.link_gw.link_address)
    assert (frame[IPv6].src, frame[IPv6].dst, frame[IPv6].hlim) == ("fe80::2", "ff02::1", 255)
    adv = frame[ICMPv6ND_RA]
    assert (adv.chlim, adv.M, adv.O, adv.routerlifetime) == (64, 1, 1, 1800)
    assert (adv.reachabletime, adv.retranstimer) == (0, 0)
    assert frame[ICMPv6NDOptSrcLLAddr].lladdr == mac_text(link.link_gw.link_address)
    assert frame[ICMPv6NDOptMTU].mtu == 1500
    info = frame[ICMPv6NDOptPrefixInfo]
    assert (info.prefix, info.prefixlen, info.L, info.A) == ("fd00:0:0:2::", 64, 1, 1)
    assert (info.validlifetime, info.preferredlifetime) == (2592000, 604800)
    rdnss = frame[ICMPv6NDOptRDNSS]
    assert (list(rdnss.dns), rdnss.lifetime) == (["fd00:0:0:2::2"], 1800)
    # scapy recomputes the checksum: ours is the same
    clone = frame.copy()
    del clone[ICMPv6ND_RA].cksum
    assert Ether(bytes(clone))[ICMPv6ND_RA].cksum == adv.cksum


def test_gateway_holds_the_link_local_address_and_joins_all_routers() -> None:
    link = make_guest_link()
    nic = link.nic_gw
    assert nic.has_address(GW_LL)
    assert ip_wire.ALL_ROUTERS in nic.multicast_groups


def test_mtu_option_is_left_out_below_the_ipv6_minimum() -> None:
    link = make_guest_link(mtu=1200, start=False)
    link.record()
    link.services.start()
    link.run(0.01)
    [frame] = advertisements(link)
    assert not frame.haslayer(ICMPv6NDOptMTU)


# --- when advertisements go out (6.2.4) ------------------------------------------------------

def test_unsolicited_schedule_initial_ones_fast_then_slow() -> None:
    link = make_guest_link(start=False)
    link.record()
    start = link.clock.now()
    link.services.start()
    times = [t - start for t in times_of_advertisements(link, 2000.0)]
    assert times[0] == pytest.approx(0.0, abs=1e-3)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0 < g <= ra.MAX_INITIAL_RTR_ADVERT_INTERVAL + 1e-3 for g in gaps[:2])
    assert all(ra.MIN_RTR_ADV_INTERVAL - 1e-3 <= g <= ra.MAX_RTR_ADV_INTERVAL + 1e-3
               for g in gaps[2:])
    assert len(gaps) >= 4


# --- answering solicitations (6.2.6) ---------------------------------------------------------

def test_solicitation_is_answered_within_max_ra_delay() -> None:
    link = make_guest_link()
    link.run(5.0)  # clear of MIN_DELAY_BETWEEN_RAS after the first advertisement
    link.record()
    sent_at = link.clock.now()
    link.link_gw.inject(rs_frame())
    times = times_of_advertisements(link, 1.0)
    assert len(times) == 1 and 0 <= times[0] - sent_at <= ra.MAX_RA_DELAY_TIME
    assert link.gateway.stats["ra.tx_solicited"] == 1
    # the solicitation's source link-layer address is learned (STALE)
    cache = link.nic_gw.neighbors[EtherType.IPV6]
    assert cache.lookup(ipaddress.IPv6Address(CLIENT_LL).packed) == bytes.fromhex(
        CLIENT_MAC.replace(":", ""))


def test_solicitations_are_rate_limited_and_coalesced() -> None:
    link = make_guest_link()
    link.run(5.0)
    link.record()
    link.link_gw.inject(rs_frame())
    [first] = times_of_advertisements(link, 1.0)
    for _ in range(3):
        link.link_gw.inject(rs_frame())
    later = times_of_advertisements(link, 5.0)
    assert len(later) == 1  # one answer for the three
    assert later[0] >= first + ra.MIN_DELAY_BETWEEN_RAS - 1e-6


@pytest.mark.parametrize("frame,counter", [
    (rs_frame(hlim=64), "ndp.drop.hop_limit_invalid"),  # 6.1.1: hop limit 255
    (rs_frame(src="::"), "ndp.drop.bad_message"),  # 6.1.1: no SLLA from ::
])
def test_invalid_solicitations_are_dropped(frame: bytes, counter: str) -> None:
    link = make_guest_link()
    link.run(5.0)
    link.record()
    link.link_gw.inject(frame)
    link.run(1.0)
    assert advertisements(link) == []
    assert link.gateway.stats[counter] == 1


def test_solicitation_from_unspecified_without_slla_is_answered() -> None:
    link = make_guest_link()
    link.run(5.0)
    link.record()
    link.link_gw.inject(rs_frame(src="::", slla=False))
    link.run(1.0)
    assert len(advertisements(link)) == 1


def test_neighbor_advertisements_carry_the_router_flag() -> None:
    """RFC 4861 7.2.4: a router sets R; a host that sees R cleared drops it as a router."""
    link = make_guest_link()
    link.record()
    solicited_node = "ff02::1:ff00:2"
    ns = (Ether(src=CLIENT_MAC, dst="33:33:ff:00:00:02")
          / IPv6(src=CLIENT_LL, dst=solicited_node, hlim=255) / ICMPv6ND_NS(tgt="fe80::2")
          / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC))
    link.link_gw.inject(bytes(ns))
    link.run(0.1)
    [na] = [f for f in map(Ether, link.link_gw.written or []) if f.haslayer(ICMPv6ND_NA)]
    assert (na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].tgt) == (1, 1, "fe80::2")


# --- the guest configures itself (RFC 4862, RFC 8106) -----------------------------------------

def test_guest_configures_address_default_route_and_dns() -> None:
    link = make_guest_link()
    link.run(2.0)  # DAD: up to 1 s random delay (RFC 4862 5.4.2), then RetransTimer
    guest, nic = link.guest, link.nic_guest
    slaac = eui64_address("fd00:0:0:2::", link.link_guest.link_address)
    assert nic.has_address(slaac)
    default = RouteEntry(bytes(16), 0, GW_LL, nic.id, metric=1024)
    assert default in guest.routes.entries()
    proto = guest.network_protocols[EtherType.IPV6]
    assert isinstance(proto, IPv6Protocol)
    assert proto.ndp.dns_servers == [ipaddress.IPv6Address("fd00:0:0:2::2").packed]
    # off-link destinations now go to the router
    assert guest.routes.lookup(ipaddress.IPv6Address("2001:db8::1").packed) == default


def test_close_sends_a_last_advertisement_with_lifetime_zero() -> None:
    link = make_guest_link()
    link.run(1.0)
    link.record()
    link.services.close()
    link.run(0.1)
    [last] = advertisements(link)
    assert last[ICMPv6ND_RA].routerlifetime == 0
    default = RouteEntry(bytes(16), 0, GW_LL, link.nic_guest.id, metric=1024)
    assert default not in link.guest.routes.entries()  # 6.3.4: gone at once
    assert ip_wire.ALL_ROUTERS not in link.nic_gw.multicast_groups
    link.record()
    link.run(2000.0)
    assert advertisements(link) == []
