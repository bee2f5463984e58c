# SPDX-License-Identifier: MIT
"""Neighbor Discovery (RFC 4861) and stateless autoconfiguration as a host (RFC 4862).

Neighbor solicitations and advertisements resolve next hops into the NIC's
neighbor cache; router advertisements configure addresses (prefix + EUI-64),
on-link routes, the default router and DNS servers (RFC 8106), each for as long
as its lifetime says (lifetimes.py), and the interface's hop limit, reachable
time and retransmission timer. New addresses go through duplicate address
detection first (dad.py).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.network.dad import DuplicateAddressDetection
from ustack.network.lifetimes import LifetimeTable
from ustack.route import Route, RouteEntry
from ustack.wire import ethernet
from ustack.wire import icmp6 as icmp_wire
from ustack.wire import ipv6 as ip_wire
from ustack.wire import ndp as wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import EtherType, IPProto

if TYPE_CHECKING:
    from ustack.network.ipv6 import IPv6Endpoint, IPv6Protocol
    from ustack.nic import NIC, InterfaceAddress
    from ustack.stack import Stack

NDP_HOP_LIMIT = 255
MAX_RTR_SOLICITATIONS = 3  # RFC 4861 section 10
RTR_SOLICITATION_INTERVAL = 4.0
#: RFC 4862 5.5.3 (e): a valid lifetime is not lowered below this by an unauthenticated RA
TWO_HOURS = 2 * 60 * 60

log = logging.getLogger("ustack.ndp")

RouterKey = tuple[int, bytes]  # (nic id, router's link-local address)
PrefixKey = tuple[int, bytes, int]  # (nic id, prefix, length)


class NDP:
    def __init__(self, stack: Stack, protocol: IPv6Protocol) -> None:
        self.stack = stack
        self.protocol = protocol
        #: recursive DNS servers learned from router advertisements (RFC 8106)
        #: recursive DNS servers learned from RAs go to the stack's list (DHCP writes there too)
        self.dns_servers: list[bytes] = stack.dns_servers
        clock = stack.clock
        #: default routers and their lifetimes (RFC 4861 6.3.4)
        self._routers: LifetimeTable[RouterKey] = LifetimeTable(clock, self._router_expired)
        #: on-link prefixes (the Prefix List, RFC 4861 6.3.4)
        self.on_link: LifetimeTable[PrefixKey] = LifetimeTable(clock, self._prefix_expired)
        #: autoconfigured addresses: valid (then removed) and preferred (then deprecated),
        #: RFC 4862 5.5.3 and 5.5.4
        self.valid: LifetimeTable[bytes] = LifetimeTable(clock, self._address_expired)
        self.preferred: LifetimeTable[bytes] = LifetimeTable(clock, self._address_deprecated)
        self.deprecated: set[bytes] = set()
        #: RDNSS addresses learned from RAs and their lifetimes (RFC 8106 5.1)
        self.rdnss: LifetimeTable[bytes] = LifetimeTable(clock, self._rdnss_expired)
        self.dad = DuplicateAddressDetection(stack, self)
        self.dad.on_duplicate = self._duplicate_found
        #: addresses being configured from a router advertisement sent to a multicast
        #: address: their DAD waits a random delay first (RFC 4862 5.4.2)
        self._from_multicast_ra: set[bytes] = set()
        self._solicited: dict[int, int] = {}  # nic id -> router solicitations sent
        #: NICs on which the stack is a router: nic id -> who answers solicitations
        self._advertising: dict[int, Callable[[PacketBuffer, wire.Options], None]] = {}
        #: what to do once a tentative address is assigned (the link-local: solicit routers)
        self._on_assigned: dict[bytes, Callable[[NIC, bytes], None]] = {}

    def serve_as_router(self, nic_id: int,
                        on_solicitation: Callable[[PacketBuffer, wire.Options], None] | None,
                        ) -> None:
        """Be a router on a NIC (None: stop): router solicitations (validated as RFC 4861
        6.1.1 says) go to ``on_solicitation``, and NAs carry the Router flag (7.2.4)."""
        if on_solicitation is None:
            self._advertising.pop(nic_id, None)
        else:
            self._advertising[nic_id] = on_solicitation

    # --- NIC lifecycle ----------------------------------------------------------------------

    def nic_enabled(self, nic: NIC) -> None:
        """Join all-nodes, take a link-local address, and look for routers (RFC 4862 5.3)
        once the link-local address is assigned (after DAD, as Linux does)."""
        nic.join_group(ip_wire.ALL_NODES)
        mac = nic.link.link_address
        if len(mac) == 6 and nic.needs_resolution:
            link_local = ip_wire.link_local_from_mac(mac)
            self._on_assigned[link_local] = self._start_soliciting
            self.stack.add_address(nic.id, (link_local, 64))
            if not self.dad.is_tentative(link_local):
                self._on_assigned.pop(link_local, None)
                self._start_soliciting(nic, link_local)

    def address_added(self, nic: NIC, entry: InterfaceAddress) -> None:
        """RFC 4862 5.4: an IPv6 address is tentative until DAD finds no other user."""
        if len(entry.addr) == 16:
            self.dad.start(nic, entry, self._dad_done,
                           delay=entry.addr in self._from_multicast_ra)

    def address_removed(self, nic: NIC, addr: bytes) -> None:
        """An address left the stack: its DAD (if still tentative), what was to follow it,
        and its SLAAC lifetimes go too (a later advertisement configures it afresh)."""
        self.dad.cancel(addr)
        self._on_assigned.pop(addr, None)
        self.valid.discard(addr)
        self.preferred.discard(addr)
        self.deprecated.discard(addr)

    def _duplicate_found(self, nic: NIC, addr: bytes) -> None:
        """RFC 4862 5.4.5: a duplicate link-local address formed from the hardware address
        means the hardware address itself is duplicated: IPv6 on the NIC SHOULD stop
        (Linux's accept_dad=2). Its addresses and what routers taught it go with it."""
        mac = nic.link.link_address
        if len(mac) != 6 or addr != ip_wire.link_local_from_mac(mac):
            return
        if not self.protocol.disable_nic(nic):
            return  # already off
        self.stack.stats.count("ndp.ipv6_disabled")
        log.error("%s: duplicate link-local address %s: hardware address %s is in use by "
                  "another node; IPv6 disabled on this interface (RFC 4862 5.4.5)",
                  nic.name, ipaddress.ip_address(addr), mac.hex(":"))
        for held in [e.addr for e in nic.addresses[16]] + self.dad.tentative_addresses(nic):
            self.stack.remove_address(held)
        for router in [r for r in self._routers if r[0] == nic.id]:
            self._routers.set(router, 0)
        for key in [k for k in self.on_link if k[0] == nic.id]:
            self.on_link.set(key, 0)
        self._solicited[nic.id] = MAX_RTR_SOLICITATIONS

    def _dad_done(self, nic: NIC, addr: bytes) -> None:
        then = self._on_assigned.pop(addr, None)
        if then is not None:
            then(nic, addr)

    def _start_soliciting(self, nic: NIC, _addr: bytes) -> None:
        if self.stack.options.slaac:
            self.stack.clock.call_soon(self._solicit_routers, nic)

    def _solicit_routers(self, nic: NIC) -> None:
        if nic.id not in self.stack.nics or any(r[0] == nic.id for r in self._routers):
            return
        sent = self._solicited.get(nic.id, 0)
        if sent >= MAX_RTR_SOLICITATIONS:
            return
        self._solicited[nic.id] = sent + 1
        src = nic.primary_address(16, ip_wire.ALL_ROUTERS)
        if src is None:
            return
        body = wire.link_addr_option(wire.OPT_SOURCE_LINK_ADDR, nic.link.link_address)
        self._send(nic, src, ip_wire.ALL_ROUTERS, ethernet.ipv6_multicast_mac(ip_wire.ALL_ROUTERS),
                   icmp_wire.ROUTER_SOLICITATION, 0, body)
        self.stack.clock.call_later(RTR_SOLICITATION_INTERVAL, self._solicit_routers, nic)

    # --- sending -------------------------------------------------------------------------------

    def send_neighbor_solicitation(self, nic: NIC, target: bytes, local: bytes | None,
                                   remote_link: bytes | None) -> None:
        """RFC 4861 7.2.2: to the solicited-node group, or unicast to reconfirm."""
        src = local if local and nic.has_address(local) else nic.primary_address(16, target)
        if src is None:
            return
        if remote_link is None:
            dst = ip_wire.solicited_node(target)
            link = ethernet.ipv6_multicast_mac(dst)
        else:
            dst, link = target, remote_link
        body = wire.neighbor_solicitation_body(target, nic.link.link_address)
        self._send(nic, src, dst, link, icmp_wire.NEIGHBOR_SOLICITATION, 0, body)
        self.stack.stats.count("ndp.tx_ns")

    def _send_advertisement(self, nic: NIC, target: bytes, dst: bytes, link: bytes,
                            solicited: bool) -> None:
        rest = wire.neighbor_advertisement_rest(router=nic.id in self._advertising,
                                                solicited=solicited, override=True)
        body = target + wire.link_addr_option(wire.OPT_TARGET_LINK_ADDR, nic.link.link_address)
        self._send(nic, target, dst, link, icmp_wire.NEIGHBOR_ADVERTISEMENT, rest, body)
        self.stack.stats.count("ndp.tx_na")

    def send_raw(self, nic: NIC, src: bytes, dst: bytes, link: bytes, kind: int, rest: int,
                 body: bytes) -> None:
        """An NDP message from ``src`` (possibly ::) to ``dst`` at link address ``link``."""
        self._send(nic, src, dst, link, kind, rest, body)

    def _send(self, nic: NIC, src: bytes, dst: bytes, link: bytes, kind: int, rest: int,
              body: bytes) -> None:
        message = icmp_wire.build(kind, 0, rest, body, src, dst)
        ep = nic.endpoints[EtherType.IPV6]
        route = Route(nic, ep, EtherType.IPV6, src, dst, dst, link_addr=link)
        pkt = PacketBuffer(ep.max_header_length, message)
        ep.write_packet(route, pkt, IPProto.ICMPV6, NDP_HOP_LIMIT, 0)

    # --- receiving -----------------------------------------------------------------------------

    def handle(self, ep: IPv6Endpoint, pkt: PacketBuffer, hdr: icmp_wire.ICMPv6Header,
               body: memoryview) -> None:
        stats = self.stack.stats
        # RFC 4861 7.1.1 / 7.1.2 / 6.1.2: hop limit 255 proves the sender is on-link
        if pkt.ttl != NDP_HOP_LIMIT or hdr.code != 0:
            stats.drop("ndp", DropReason.HOP_LIMIT_INVALID)
            return
        try:
            if hdr.type == icmp_wire.NEIGHBOR_SOLICITATION:
                self._on_solicitation(ep.nic, pkt, wire.parse_neighbor_solicitation(body))
            elif hdr.type == icmp_wire.NEIGHBOR_ADVERTISEMENT:
                self._on_advertisement(ep.nic, pkt, wire.parse_neighbor_advertisement(body))
            elif hdr.type == icmp_wire.ROUTER_ADVERTISEMENT:
                self._on_router_advertisement(ep, pkt, wire.parse_router_advertisement(body))
            elif hdr.type == icmp_wire.ROUTER_SOLICITATION and ep.nic.id in self._advertising:
                self._on_router_solicitation(ep.nic, pkt, wire.parse_router_solicitation(body))
            else:
                stats.count(f"ndp.ignored_type_{hdr.type}")
        except ParseError as err:
            stats.drop("ndp", err.reason)

    def _on_solicitation(self, nic: NIC, pkt: PacketBuffer, ns: wire.NeighborSolicitation) -> None:
        stats = self.stack.stats
        unspecified = not any(pkt.src_addr)
        if ip_wire.is_multicast(ns.target) or (
                unspecified and (ns.options.source_link_addr is not None
                                 or pkt.dst_addr[:13] != ip_wire.solicited_node(ns.target)[:13])):
            stats.drop("ndp", DropReason.BAD_MESSAGE)
            return
        if self.dad.is_tentative(ns.target):
            # RFC 4862 5.4.3: a tentative address answers nothing; another node's DAD
            # probe for it (from ::) means it is a duplicate
            if unspecified:
                self.dad.conflict(nic, ns.target, "neighbor solicitation from another node")
            else:
                stats.count("ndp.ns_for_tentative")
            return
        if not nic.has_address(ns.target):  # 7.2.3: checked before anything is learned
            stats.count("ndp.ns_not_for_us")
            return
        slla = ns.options.source_link_addr
        cache = nic.neighbors.get(EtherType.IPV6)
        if slla is not None and cache is not None:
            cache.update(pkt.src_addr, slla, confirmed=False, override=True)  # STALE (7.2.3)
        if unspecified:  # a DAD probe: answer all-nodes (RFC 4861 7.2.4)
            self._send_advertisement(nic, ns.target, ip_wire.ALL_NODES,
                                     ethernet.ipv6_multicast_mac(ip_wire.ALL_NODES), False)
            return
        link = slla or (cache.lookup(pkt.src_addr) if cache else None) or pkt.src_link
        self._send_advertisement(nic, ns.target, pkt.src_addr, link, True)

    def _on_router_solicitation(self, nic: NIC, pkt: PacketBuffer, opts: wire.Options) -> None:
        """RFC 4861 6.1.1: no source link-layer address option from the unspecified
        address; 6.2.6: a known source link-layer address updates the cache (STALE)."""
        slla = opts.source_link_addr
        if not any(pkt.src_addr):
            if slla is not None:
                self.stack.stats.drop("ndp", DropReason.BAD_MESSAGE)
                return
        elif slla is not None and (cache := nic.neighbors.get(EtherType.IPV6)) is not None:
            cache.update(pkt.src_addr, slla, confirmed=False, override=True)
        self.stack.stats.count("ndp.rx_rs")
        self._advertising[nic.id](pkt, opts)

    def _on_advertisement(self, nic: NIC, pkt: PacketBuffer,
                          na: wire.NeighborAdvertisement) -> None:
        if ip_wire.is_multicast(na.target) or (na.solicited and ip_wire.is_multicast(pkt.dst_addr)):
            self.stack.stats.drop("ndp", DropReason.BAD_MESSAGE)
            return
        if self.dad.conflict(nic, na.target, "neighbor advertisement"):  # RFC 4862 5.4.4
            return
        if nic.has_address(na.target):
            self.stack.stats.count("ndp.address_conflict")
            return
        cache = nic.neighbors.get(EtherType.IPV6)
        link = na.options.target_link_addr
        if cache is not None and link is not None:
            # RFC 4861 7.2.5: only entries we have; solicited means reachable
            cache.update(na.target, link, confirmed=na.solicited, override=na.override,
                         create=False)
        elif cache is not None and na.solicited:
            # 7.2.4: an answer to a unicast probe may leave the option out (Linux does);
            # 7.2.5: no option means the cached address, now confirmed
            cache.confirm(na.target)

    def _on_router_advertisement(self, ep: IPv6Endpoint, pkt: PacketBuffer,
                                 ra: wire.RouterAdvertisement) -> None:
        """RFC 4861 6.3.4 and RFC 4862 5.5.3: learn the router, prefixes, MTU, DNS."""
        nic = ep.nic
        stats = self.stack.stats
        if not ip_wire.is_link_local(pkt.src_addr):
            stats.drop("ndp", DropReason.BAD_ADDRESS)
            return
        stats.count("ndp.rx_ra")
        if ra.options.ignored:
            stats.count("ndp.option_ignored", ra.options.ignored)
        cache = nic.neighbors.get(EtherType.IPV6)
        if ra.options.source_link_addr is not None and cache is not None:
            cache.update(pkt.src_addr, ra.options.source_link_addr, confirmed=False)
        if not self.stack.options.slaac:
            return
        self._learn_parameters(nic, ra)
        router = (nic.id, pkt.src_addr)
        if ra.router_lifetime:
            if router not in self._routers:
                self.stack.routes.add(self._default_route(router))
            self._routers.set(router, ra.router_lifetime)
        elif router in self._routers:
            self._routers.set(router, 0)  # 6.3.4: time it out immediately
        mtu = ra.options.mtu
        if mtu is not None and icmp_wire.MIN_MTU <= mtu <= nic.link.mtu:
            ep.ra_mtu = mtu  # 6.3.4: the advertised link MTU, within what the link allows
        for info in ra.options.prefixes:
            self._on_prefix(nic, info, ip_wire.is_multicast(pkt.dst_addr))
        for server in ra.options.rdnss:
            self._on_rdnss(server, ra.options.rdnss_lifetime)

    def _learn_parameters(self, nic: NIC, ra: wire.RouterAdvertisement) -> None:
        """RFC 4861 6.3.4: non-zero Cur Hop Limit, Reachable Time and Retrans Timer
        replace the interface's values (zero: unspecified by this router)."""
        if ra.cur_hop_limit:
            ep = nic.endpoints.get(EtherType.IPV6)
            if ep is not None:
                ep.ra_hop_limit = ra.cur_hop_limit  # type: ignore[attr-defined]
        cache = nic.neighbors.get(EtherType.IPV6)
        if cache is None:
            return
        if ra.reachable_time and ra.reachable_time / 1000 != cache.base_reachable_time:
            cache.set_base_reachable_time(ra.reachable_time / 1000)  # new random factor
        if ra.retrans_timer:
            cache.retrans_time = ra.retrans_timer / 1000

    def _on_prefix(self, nic: NIC, info: wire.PrefixInfo, multicast: bool = False) -> None:
        if ip_wire.is_link_local(info.prefix) or info.preferred_lifetime > info.valid_lifetime:
            self.stack.stats.count("ndp.prefix_ignored")  # RFC 4862 5.5.3 (b), (c)
            return
        if info.on_link:  # RFC 4861 6.3.4: the Prefix List
            key = (nic.id, prefix_bits(info.prefix, info.length), info.length)
            if key in self.on_link or info.valid_lifetime:
                if key not in self.on_link:
                    # the prefix's route belongs to its Prefix List entry, whatever
                    # addresses come and go in it
                    self.stack.hold_route(self._prefix_route(key), key)
                self.on_link.set(key, info.valid_lifetime)
        mac = nic.link.link_address
        if info.autonomous and info.length == 64 and len(mac) == 6:
            self._autoconfigure(nic, info.prefix[:8] + ip_wire.eui64(mac), info, multicast)

    def _autoconfigure(self, nic: NIC, addr: bytes, info: wire.PrefixInfo,
                       multicast: bool = False) -> None:
        """RFC 4862 5.5.3 (d) a new address, (e) an address we formed from it before."""
        valid, preferred = info.valid_lifetime, info.preferred_lifetime
        if addr not in self.valid:
            if not valid or nic.has_address(addr) or self.dad.is_tentative(addr):
                return  # (d): zero valid lifetime; or configured by other means
            if multicast:  # RFC 4862 5.4.2: DAD after a random delay
                self._from_multicast_ra.add(addr)
            try:
                self.stack.add_address(nic.id, (addr, 64), connected_route=False)
            finally:
                self._from_multicast_ra.discard(addr)
            self.valid.set(addr, valid)
            self._set_preferred(addr, preferred)
            self.stack.stats.count("ndp.slaac_address")
            return
        self._set_preferred(addr, preferred)
        remaining = self.valid.remaining(addr) or 0.0
        # (e): the "two hours" rule against a short-lived RA cutting the address off
        if valid > TWO_HOURS or valid > remaining:
            self.valid.set(addr, valid)
        elif remaining > TWO_HOURS:
            self.valid.set(addr, TWO_HOURS)
        else:
            self.stack.stats.count("ndp.valid_lifetime_kept")

    def _set_preferred(self, addr: bytes, preferred: int) -> None:
        if preferred:
            self.deprecated.discard(addr)
            nic = self.stack.local_nic(addr)
            if nic is not None:
                nic.deprecated.discard(addr)
            self.preferred.set(addr, preferred)
        else:
            self.preferred.discard(addr)
            self._address_deprecated(addr)

    def _on_rdnss(self, server: bytes, lifetime: int) -> None:
        """RFC 8106 5.1: a lifetime of zero removes the server; otherwise (re)arm it."""
        if lifetime and server not in self.dns_servers:
            self.dns_servers.append(server)
        if lifetime or server in self.rdnss:
            self.rdnss.set(server, lifetime)

    # --- expiry -------------------------------------------------------------------------------

    @staticmethod
    def _default_route(router: RouterKey) -> RouteEntry:
        return RouteEntry(ip_wire.ANY, 0, router[1], router[0], metric=1024)

    def _router_expired(self, router: RouterKey) -> None:
        self.stack.routes.remove(self._default_route(router))
        self.stack.stats.count("ndp.router_expired")

    @staticmethod
    def _prefix_route(key: PrefixKey) -> RouteEntry:
        return RouteEntry(key[1], key[2], None, key[0])

    def _prefix_expired(self, key: PrefixKey) -> None:
        self.stack.release_route(self._prefix_route(key), key)
        self.stack.stats.count("ndp.prefix_expired")

    def _address_deprecated(self, addr: bytes) -> None:
        """RFC 4862 5.5.4: a deprecated address stays valid but is not a source for new
        communication when another address will do (RFC 6724 rule 3)."""
        if addr not in self.deprecated:
            self.deprecated.add(addr)
            self.stack.stats.count("ndp.address_deprecated")
            nic = self.stack.local_nic(addr)
            if nic is not None:
                nic.deprecated.add(addr)

    def _address_expired(self, addr: bytes) -> None:
        """RFC 4862 5.5.4: past its valid lifetime the address is removed."""
        # tentative or assigned; the prefix's on-link route is not the address's (it was
        # added without one) but the Prefix List's, which may outlive it (two-hour rule)
        self.stack.remove_address(addr)  # address_removed forgets its other lifetimes
        self.stack.stats.count("ndp.address_expired")

    def _rdnss_expired(self, server: bytes) -> None:
        if server in self.dns_servers:
            self.dns_servers.remove(server)
            self.stack.stats.count("ndp.rdnss_expired")


def prefix_bits(prefix: bytes, length: int) -> bytes:
    """``prefix`` with the bits past ``length`` cleared (RFC 4861 4.6.2: they are ignored)."""
    value = int.from_bytes(prefix, "big") >> (128 - length) << (128 - length) if length else 0
    return value.to_bytes(16, "big")

