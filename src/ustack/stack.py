# SPDX-License-Identifier: MIT
"""The Stack: NICs, routes, registered protocols, transport dispatch and stats.

Single-threaded: one event loop (behind a :class:`~ustack.clock.Clock`) owns it.
Other threads reach it through :meth:`Stack.call` and the socket API.
"""

from __future__ import annotations

import errno
import ipaddress
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ustack.buffer import PacketBuffer
from ustack.clock import Clock, VirtualClock
from ustack.contracts import (
    ControlMessage,
    DeliveryResult,
    GroupMembershipProtocol,
    GroupProtocolFactory,
    LinkEndpoint,
    NetworkProtocol,
    NetworkProtocolFactory,
    TransportProtocol,
    TransportProtocolFactory,
)
from ustack.demux import EndpointTable
from ustack.network.neighbor import NeighborCache, NeighborConfig
from ustack.nic import NIC, InterfaceAddress
from ustack.route import Route, RouteEntry, RouteTable
from ustack.stats import Stats
from ustack.wire import ethernet
from ustack.wire import ipv4 as ipv4_wire
from ustack.wire import ipv6 as ipv6_wire
from ustack.wire.errors import DropReason
from ustack.wire.proto import EtherType, IPProto

T = TypeVar("T")


@dataclass
class StackOptions:
    default_ttl: int = 64
    #: ICMP errors sent per second and burst (Linux: icmp_ratelimit 1000/s, burst 50)
    icmp_rate: float = 1000.0
    icmp_burst: int = 50
    reassembly_timeout: float = 30.0  # Linux ipfrag_time
    reassembly_timeout6: float = 60.0  # RFC 8200 4.5 (Linux ip6frag_time)
    reassembly_memory: int = 4 * 1024 * 1024  # Linux ipfrag_high_thresh
    #: act as an IPv6 host that configures itself from router advertisements (SLAAC)
    slaac: bool = True
    #: send a gratuitous ARP / unsolicited NA when an address is added
    announce: bool = True
    #: duplicate address detection probes for new IPv6 addresses (RFC 4862 5.4,
    #: DupAddrDetectTransmits; Linux dad_transmits=1); 0 assigns them at once
    dad_transmits: int = 1


def default_network_protocols() -> list[NetworkProtocolFactory]:
    from ustack.network import arp, ipv4, ipv6

    return [ipv4.factory, arp.factory, ipv6.factory]


def default_transport_protocols() -> list[TransportProtocolFactory]:
    from ustack.transport import icmp, udp

    factories: list[TransportProtocolFactory] = [udp.factory, icmp.factory4, icmp.factory6]
    try:
        from ustack.transport.tcp import protocol as tcp
    except ImportError:
        return factories
    return [tcp.factory, *factories]


def default_group_protocols() -> list[GroupProtocolFactory]:
    from ustack.network import igmp, mld

    return [igmp.factory, mld.factory]


def _wants_multicast(ep: object, group: bytes, nic_id: int) -> bool:
    wants = getattr(ep, "wants_multicast", None)
    return wants is None or bool(wants(group, nic_id))


def parse_interface(text: str) -> tuple[bytes, int]:
    """``"10.0.0.2/24"`` -> (packed address, prefix length)."""
    iface = ipaddress.ip_interface(text)
    return iface.ip.packed, iface.network.prefixlen


class Stack:
    def __init__(self, clock: Clock | None = None,
                 network: Sequence[NetworkProtocolFactory] | None = None,
                 transport: Sequence[TransportProtocolFactory] | None = None,
                 options: StackOptions | None = None, seed: int | None = None,
                 groups: Sequence[GroupProtocolFactory] | None = None) -> None:
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self.options = options or StackOptions()
        self.random = random.Random(seed)
        #: the seed, for components that draw from a random stream of their own
        self.seed = seed
        self.stats = Stats()
        self.nics: dict[int, NIC] = {}
        self.routes = RouteTable()
        self._local_addrs: dict[bytes, NIC] = {}
        #: the connected route each address put in the table, and who holds each such
        #: route (addresses; on-link prefixes from router advertisements, RFC 4861 6.3.4)
        self._connected: dict[bytes, RouteEntry] = {}
        self._route_holders: dict[RouteEntry, set[object]] = {}
        #: IPv6 addresses whose solicited-node group was joined for them (RFC 4861 7.2.1)
        self._solicited_joined: set[bytes] = set()
        self.neighbor_config = NeighborConfig()
        #: recursive DNS servers the stack was configured with (by DHCP, or by hand)
        self.dns_servers: list[bytes] = []
        self.network_protocols: dict[int, NetworkProtocol] = {}
        self.transport_protocols: dict[int, TransportProtocol] = {}
        self.demux: dict[int, EndpointTable] = {}
        for make_net in network if network is not None else default_network_protocols():
            proto = make_net(self)
            self.network_protocols[proto.number] = proto
        for make_transport in (transport if transport is not None
                               else default_transport_protocols()):
            tproto = make_transport(self)
            self.register_transport_protocol(tproto)
        #: IGMP and MLD by address size (4, 16): multicast memberships per NIC
        self.group_protocols: dict[int, GroupMembershipProtocol] = {}
        for make_group in groups if groups is not None else default_group_protocols():
            gproto = make_group(self)
            self.group_protocols[gproto.address_size] = gproto

    def register_transport_protocol(self, proto: TransportProtocol) -> None:
        self.transport_protocols[proto.number] = proto
        self.demux.setdefault(proto.number, EndpointTable(self.random, proto.name))

    # --- NICs and addresses -------------------------------------------------------------------

    def create_nic(self, link: LinkEndpoint, name: str | None = None) -> NIC:
        nic_id = max(self.nics, default=0) + 1
        nic = NIC(self, nic_id, name or f"nic{nic_id}", link)
        self.nics[nic_id] = nic
        for proto in self.network_protocols.values():
            nic.endpoints[proto.number] = proto.new_endpoint(nic, self)
            resolves = getattr(proto, "resolves", None)
            if nic.needs_resolution and resolves is not None:
                cache = NeighborCache(nic, proto, self.clock, self.stats,  # type: ignore[arg-type]
                                      proto.name, self.neighbor_config)
                nic.neighbors[resolves] = cache
                cache.on_failure = self._resolution_failed_handler(nic, resolves)
        link.attach(nic)
        for proto in self.network_protocols.values():
            enable = getattr(proto, "nic_enabled", None)
            if enable is not None:
                enable(nic)
        for group_proto in self.group_protocols.values():
            group_proto.nic_enabled(nic)
        return nic

    @staticmethod
    def _resolution_failed_handler(nic: NIC, ethertype: int) -> Callable[[PacketBuffer], None]:
        def failed(pkt: PacketBuffer) -> None:
            handler = getattr(nic.endpoints.get(ethertype), "handle_link_resolution_failure", None)
            if handler is not None:
                handler(pkt)

        return failed

    def remove_nic(self, nic_id: int) -> None:
        nic = self.nics.pop(nic_id)
        for group_proto in self.group_protocols.values():
            group_proto.nic_removed(nic_id)
        for addr in [a for a, owner in self._local_addrs.items() if owner is nic]:
            del self._local_addrs[addr]  # tentative ones too (RFC 4862 5.4)
            self._connected.pop(addr, None)
            self._solicited_joined.discard(addr)
            self._address_removed(nic, addr)
        for route in [r for r in self._route_holders if r.nic_id == nic_id]:
            del self._route_holders[route]
        self.routes.remove_nic(nic_id)
        nic.close()

    def nic(self, nic_id: int | str | None = None) -> NIC:
        if nic_id is None:
            if len(self.nics) != 1:
                raise ValueError("name the NIC: the stack has several")
            return next(iter(self.nics.values()))
        if isinstance(nic_id, str):
            for nic in self.nics.values():
                if nic.name == nic_id:
                    return nic
            raise KeyError(nic_id)
        return self.nics[nic_id]

    def add_address(self, nic_id: int | str | None, address: str | tuple[bytes, int],
                    connected_route: bool = True, dad: bool = True) -> InterfaceAddress:
        """Assign ``"addr/len"`` to a NIC and (by default) route its subnet there.
        ``dad=False`` skips IPv6 duplicate address detection (``ip addr add ... nodad``)."""
        nic = self.nic(nic_id)
        addr, plen = parse_interface(address) if isinstance(address, str) else address
        entry = nic.add_address(addr, plen)
        self._local_addrs[addr] = nic
        if connected_route:
            net = ipaddress.ip_network((addr, plen), strict=False)
            route = RouteEntry(net.network_address.packed, plen, None, nic.id)
            old = self._connected.get(addr)
            if old is not None and old != route:
                self.release_route(old, addr)
            self._connected[addr] = route
            self.hold_route(route, addr)
        for proto in self.network_protocols.values():
            added = getattr(proto, "address_added", None)
            if added is not None:
                added(nic, entry)
            assume_unique = None if dad else getattr(proto, "assume_unique", None)
            if assume_unique is not None:
                assume_unique(nic, entry)
        if len(addr) == 16 and nic.has_address(addr):
            # assigned now (a tentative address's group is joined when its duplicate
            # address detection begins, RFC 4862 5.4.2)
            self.join_solicited_node(nic, addr)
        return entry

    def join_solicited_node(self, nic: NIC, addr: bytes) -> None:
        """RFC 4861 7.2.1: join ``addr``'s solicited-node group, reported by MLD (RFC 3810
        6); once per address, left again by :meth:`remove_address`."""
        if addr not in self._solicited_joined and self._local_addrs.get(addr) is nic:
            self._solicited_joined.add(addr)
            self.join_group(nic, ipv6_wire.solicited_node(addr))

    def remove_address(self, address: str | bytes) -> bool:
        """Take an address (assigned or still tentative) off its NIC, with its connected
        route and solicited-node group; False if the stack does not hold it."""
        addr = ipaddress.ip_interface(address).ip.packed if isinstance(address, str) else address
        nic = self._local_addrs.pop(addr, None)
        if nic is None:
            return False
        nic.remove_address(addr)
        self._address_removed(nic, addr)
        if addr in self._solicited_joined:
            self._solicited_joined.discard(addr)
            self.leave_group(nic, ipv6_wire.solicited_node(addr))
        route = self._connected.pop(addr, None)
        if route is not None:
            self.release_route(route, addr)
        return True

    def _address_removed(self, nic: NIC, addr: bytes) -> None:
        for proto in self.network_protocols.values():
            removed = getattr(proto, "address_removed", None)
            if removed is not None:
                removed(nic, addr)  # IPv6: a tentative address's DAD stops

    def hold_route(self, route: RouteEntry, holder: object) -> None:
        """Put ``route`` in the table on behalf of ``holder`` (an address, an on-link
        prefix); it stays while anyone holds it."""
        holders = self._route_holders.setdefault(route, set())
        if not holders:
            self.routes.add(route)
        holders.add(holder)

    def release_route(self, route: RouteEntry, holder: object) -> None:
        """``holder`` no longer needs ``route``: the last one out removes it."""
        holders = self._route_holders.get(route)
        if holders is None or holder not in holders:
            return
        holders.discard(holder)
        if not holders:
            del self._route_holders[route]
            self.routes.remove(route)

    def add_route(self, destination: str, gateway: str | None = None,
                  nic_id: int | str | None = None, metric: int = 0) -> RouteEntry:
        """``destination`` is a prefix or ``"default"`` / ``"default6"``."""
        if destination in ("default", "default4"):
            destination = "0.0.0.0/0"
        elif destination == "default6":
            destination = "::/0"
        net = ipaddress.ip_network(destination, strict=False)
        gw = ipaddress.ip_address(gateway).packed if gateway else None
        entry = RouteEntry(net.network_address.packed, net.prefixlen, gw,
                           self.nic(nic_id).id, metric)
        self.routes.add(entry)
        return entry

    def is_local_address(self, addr: bytes) -> bool:
        return addr in self._local_addrs

    def local_nic(self, addr: bytes) -> NIC | None:
        return self._local_addrs.get(addr)

    # --- multicast groups ---------------------------------------------------------------------

    def join_group(self, nic: NIC | int | str | None, group: bytes) -> None:
        """Join ``group`` on a NIC (reference counted; the first join is reported)."""
        nic = nic if isinstance(nic, NIC) else self.nic(nic)
        proto = self.group_protocols.get(len(group))
        if proto is None:
            nic.join_group(group)
        else:
            proto.join(nic, group)

    def leave_group(self, nic: NIC | int | str | None, group: bytes) -> bool:
        """Drop one reference to ``group``; False if the NIC was not a member."""
        nic = nic if isinstance(nic, NIC) else self.nic(nic)
        proto = self.group_protocols.get(len(group))
        if proto is None:
            member = group in nic.multicast_groups
            nic.leave_group(group)
            return member
        return proto.leave(nic, group)

    # --- routing ------------------------------------------------------------------------------

    def find_route(self, remote: bytes, local: bytes | None = None,
                   nic_id: int | None = None) -> Route:
        """Resolve how to reach ``remote``; raises OSError (ENETUNREACH, EADDRNOTAVAIL)."""
        size = len(remote)
        ethertype = EtherType.IPV4 if size == 4 else EtherType.IPV6
        if local is not None and not any(local):
            local = None
        nic = self._local_addrs.get(remote)
        if nic is not None and (nic_id is None or nic.id == nic_id):
            ep = nic.endpoints[ethertype]
            return Route(nic, ep, ethertype, local or remote, remote, remote, is_local=True)
        multicast = (ipv4_wire.is_multicast(remote) or remote == ipv4_wire.BROADCAST
                     if size == 4 else ipv6_wire.is_multicast(remote))
        entry = self.routes.lookup(remote, nic_id)
        if entry is not None:
            nic = self.nics[entry.nic_id]
        elif nic_id is not None and (multicast or (size == 16 and ipv6_wire.is_link_local(remote))):
            nic = self.nics[nic_id]
        elif multicast and len(self.nics) == 1:
            nic = next(iter(self.nics.values()))
        else:
            self.stats.count("route.unreachable")
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        if local is None:
            # IPv4 via a gateway: an address on the gateway's subnet (Linux inet_select_addr)
            gateway = entry.gateway if entry is not None and size == 4 else None
            local = nic.primary_address(size, gateway or remote)
            if local is None:
                raise OSError(errno.ENETUNREACH, "Network is unreachable (no source address)")
        elif not nic.has_address(local) and not nic.spoofing:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        next_hop = entry.gateway if entry is not None and entry.gateway else remote
        link: bytes | None = None
        if size == 4:
            if remote == ipv4_wire.BROADCAST or nic.is_broadcast(remote):
                link = ethernet.BROADCAST
            elif ipv4_wire.is_multicast(remote):
                link = ethernet.ipv4_multicast_mac(remote)
        elif ipv6_wire.is_multicast(remote):
            link = ethernet.ipv6_multicast_mac(remote)
        return Route(nic, nic.endpoints[ethertype], ethertype, local, remote, next_hop,
                     link_addr=link)

    # --- transport dispatch (TransportDispatcher) ------------------------------------------------

    def deliver_transport_packet(self, protocol: int, pkt: PacketBuffer) -> DeliveryResult:
        proto = self.transport_protocols.get(protocol)
        if proto is None:
            return DeliveryResult.UNKNOWN_PROTOCOL
        ports = proto.parse_ports(pkt)
        if ports is None:
            return DeliveryResult.DROPPED
        sport, dport = ports
        table = self.demux[protocol]
        dst, nic = pkt.dst_addr, pkt.nic
        if protocol == IPProto.UDP and (
                ipv6_wire.is_multicast(dst) if len(dst) == 16 else ipv4_wire.is_multicast(dst)
                or (isinstance(nic, NIC) and nic.is_broadcast(dst))):
            # Linux __udp4_lib_mcast_deliver: every socket on the port gets its own copy
            group = table.find_all(dst, dport)
            if isinstance(nic, NIC) and (dst[0] == 0xFF if len(dst) == 16
                                         else ipv4_wire.is_multicast(dst)):
                group = [ep for ep in group if _wants_multicast(ep, dst, nic.id)]
            for each in group:
                each.handle_packet(pkt.clone())
            if group:
                return DeliveryResult.DELIVERED
        ep = table.find(pkt.dst_addr, dport, pkt.src_addr, sport)
        if ep is not None:
            ep.handle_packet(pkt)
            return DeliveryResult.DELIVERED
        return proto.handle_unknown_destination(pkt)

    def deliver_transport_control(self, protocol: int, error: ControlMessage,
                                  pkt: PacketBuffer) -> bool:
        table = self.demux.get(protocol)
        if table is None:
            return False
        ep = table.find(error.local_addr, error.local_port, error.remote_addr, error.remote_port)
        if ep is None:
            self.stats.drop("icmp", DropReason.NO_LISTENER)
            return False
        return ep.handle_control(error, pkt) is not False

    # --- threads and sockets ------------------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the stack's thread and return its result (directly if already there)."""
        if self.clock.in_owner_thread():
            return fn(*args)
        from ustack.bridge import call_in_loop

        return call_in_loop(self.clock, fn, *args)

    def socket(self, family: int = 2, type: int = 2, proto: int = 0) -> Any:
        """A BSD-like socket on this stack: ``stack.socket(AF_INET, SOCK_DGRAM)``."""
        from ustack.socket import create_socket

        return create_socket(self, family, type, proto)

    def close(self) -> None:
        for nic_id in list(self.nics):
            self.remove_nic(nic_id)
