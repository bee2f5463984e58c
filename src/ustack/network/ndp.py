# SPDX-License-Identifier: MIT
"""Neighbor Discovery (RFC 4861) and stateless autoconfiguration as a host (RFC 4862).

Neighbor solicitations and advertisements resolve next hops into the NIC's
neighbor cache; router advertisements configure addresses (prefix + EUI-64),
on-link routes, the default router and DNS servers (RFC 8106). Duplicate
address detection is not performed: ustack's links are point-to-point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.route import Route, RouteEntry
from ustack.wire import ethernet
from ustack.wire import icmp6 as icmp_wire
from ustack.wire import ipv6 as ip_wire
from ustack.wire import ndp as wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import EtherType, IPProto

if TYPE_CHECKING:
    from ustack.network.ipv6 import IPv6Endpoint, IPv6Protocol
    from ustack.nic import NIC
    from ustack.stack import Stack

NDP_HOP_LIMIT = 255
MAX_RTR_SOLICITATIONS = 3  # RFC 4861 section 10
RTR_SOLICITATION_INTERVAL = 4.0


class NDP:
    def __init__(self, stack: Stack, protocol: IPv6Protocol) -> None:
        self.stack = stack
        self.protocol = protocol
        #: recursive DNS servers learned from router advertisements (RFC 8106)
        #: recursive DNS servers learned from RAs go to the stack's list (DHCP writes there too)
        self.dns_servers: list[bytes] = stack.dns_servers
        self._routers: set[tuple[int, bytes]] = set()
        self._solicited: dict[int, int] = {}  # nic id -> router solicitations sent
        #: NICs on which the stack is a router: nic id -> who answers solicitations
        self._advertising: dict[int, Callable[[PacketBuffer, wire.Options], None]] = {}

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
        """Join all-nodes, take a link-local address, and look for routers (RFC 4862 5.3)."""
        nic.join_group(ip_wire.ALL_NODES)
        mac = nic.link.link_address
        if len(mac) == 6 and nic.needs_resolution:
            self.stack.add_address(nic.id, (ip_wire.link_local_from_mac(mac), 64))
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
        if nic.has_address(na.target):
            self.stack.stats.count("ndp.address_conflict")
            return
        cache = nic.neighbors.get(EtherType.IPV6)
        link = na.options.target_link_addr
        if cache is not None and link is not None:
            # RFC 4861 7.2.5: only entries we have; solicited means reachable
            cache.update(na.target, link, confirmed=na.solicited, override=na.override,
                         create=False)

    def _on_router_advertisement(self, ep: IPv6Endpoint, pkt: PacketBuffer,
                                 ra: wire.RouterAdvertisement) -> None:
        """RFC 4861 6.3.4 and RFC 4862 5.5.3: learn the router, prefixes, MTU, DNS."""
        nic = ep.nic
        if not ip_wire.is_link_local(pkt.src_addr):
            self.stack.stats.drop("ndp", DropReason.BAD_ADDRESS)
            return
        self.stack.stats.count("ndp.rx_ra")
        cache = nic.neighbors.get(EtherType.IPV6)
        if ra.options.source_link_addr is not None and cache is not None:
            cache.update(pkt.src_addr, ra.options.source_link_addr, confirmed=False)
        if not self.stack.options.slaac:
            return
        if ra.router_lifetime and (nic.id, pkt.src_addr) not in self._routers:
            self._routers.add((nic.id, pkt.src_addr))
            self.stack.routes.add(RouteEntry(ip_wire.ANY, 0, pkt.src_addr, nic.id, metric=1024))
        elif not ra.router_lifetime and (nic.id, pkt.src_addr) in self._routers:
            self._routers.discard((nic.id, pkt.src_addr))  # 6.3.4: time it out immediately
            self.stack.routes.remove(RouteEntry(ip_wire.ANY, 0, pkt.src_addr, nic.id, metric=1024))
        mtu = ra.options.mtu
        if mtu is not None and icmp_wire.MIN_MTU <= mtu <= nic.link.mtu:
            ep.ra_mtu = mtu  # 6.3.4: the advertised link MTU, within what the link allows
        mac = nic.link.link_address
        for info in ra.options.prefixes:
            if ip_wire.is_link_local(info.prefix) or info.preferred_lifetime > info.valid_lifetime:
                continue
            if info.autonomous and info.length == 64 and info.valid_lifetime and len(mac) == 6:
                addr = info.prefix[:8] + ip_wire.eui64(mac)
                if not nic.has_address(addr):
                    self.stack.add_address(nic.id, (addr, 64), connected_route=info.on_link)
                    self.stack.stats.count("ndp.slaac_address")
            elif info.on_link and info.valid_lifetime:
                self.stack.routes.add(RouteEntry(info.prefix, info.length, None, nic.id))
        for server in ra.options.rdnss:
            if server not in self.dns_servers and ra.options.rdnss_lifetime:
                self.dns_servers.append(server)

