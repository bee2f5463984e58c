# SPDX-License-Identifier: MIT
"""A NIC: one link endpoint, its addresses, its network endpoints and neighbor caches."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from ustack.buffer import PacketBuffer
from ustack.contracts import LinkCapabilities, LinkEndpoint, NetworkEndpoint
from ustack.network.neighbor import NeighborCache
from ustack.stats import Stats
from ustack.wire import ethernet
from ustack.wire import ipv6 as ipv6_wire
from ustack.wire.errors import DropReason
from ustack.wire.proto import EtherType

if TYPE_CHECKING:
    from ustack.route import Route
    from ustack.stack import Stack


class InterfaceAddress(NamedTuple):
    addr: bytes
    prefix_len: int

    def __str__(self) -> str:
        return f"{ipaddress.ip_address(self.addr)}/{self.prefix_len}"

    def contains(self, other: bytes) -> bool:
        if len(other) != len(self.addr):
            return False
        shift = len(other) * 8 - self.prefix_len
        return (int.from_bytes(other, "big") >> shift) == (int.from_bytes(self.addr, "big")
                                                          >> shift)

    @property
    def broadcast(self) -> bytes:
        """The directed broadcast address of an IPv4 subnet."""
        host_bits = 32 - self.prefix_len
        value = int.from_bytes(self.addr, "big") | ((1 << host_bits) - 1)
        return value.to_bytes(4, "big")


class NIC:
    """Implements NetworkDispatcher for its link endpoint."""

    def __init__(self, stack: Stack, nic_id: int, name: str, link: LinkEndpoint) -> None:
        self.stack = stack
        self.id = nic_id
        self.name = name
        self.link = link
        self.stats = Stats()
        self.addresses: dict[int, list[InterfaceAddress]] = {4: [], 16: []}
        self._local: set[bytes] = set()  # unicast addresses, for O(1) "is it ours"
        self._broadcast: set[bytes] = {b"\xff\xff\xff\xff"}
        self.multicast_groups: set[bytes] = set()
        #: addresses past their preferred lifetime (RFC 4862 5.5.4): sources of last resort
        self.deprecated: set[bytes] = set()
        #: the link filter: multicast MACs of the joined groups (RFC 1112 6.4, RFC 2464 7)
        self._multicast_macs: Counter[bytes] = Counter({ethernet.BROADCAST: 1})
        self.endpoints: dict[int, NetworkEndpoint] = {}
        self.neighbors: dict[int, NeighborCache] = {}
        #: accept packets for any destination address (the guest-forwarding mode)
        self.promiscuous = False
        #: send from any source address, not only assigned ones
        self.spoofing = False
        self.enabled = True
        #: network protocols turned off here (IPv6 after a duplicate hardware-derived
        #: link-local address, RFC 4862 5.4.5): nothing of theirs is sent
        self.disabled_protocols: set[int] = set()
        caps = link.capabilities
        self.needs_resolution = bool(caps & LinkCapabilities.RESOLUTION_REQUIRED)
        self.rx_checksum_offload = bool(caps & LinkCapabilities.RX_CHECKSUM_OFFLOAD)
        self.tx_checksum_offload = bool(caps & LinkCapabilities.TX_CHECKSUM_OFFLOAD)

    def __repr__(self) -> str:
        return f"NIC({self.id}, {self.name!r})"

    # --- addresses ----------------------------------------------------------------------

    def add_address(self, addr: bytes, prefix_len: int) -> InterfaceAddress:
        entry = InterfaceAddress(addr, prefix_len)
        rows = self.addresses[len(addr)]
        if entry not in rows:
            rows.append(entry)
            self._local.add(addr)
            if len(addr) == 4 and prefix_len < 31:
                self._broadcast.add(entry.broadcast)
            if len(addr) == 16:
                self.join_group(ipv6_wire.solicited_node(addr))
        return entry

    def remove_address(self, addr: bytes) -> bool:
        rows = self.addresses[len(addr)]
        for entry in rows:
            if entry.addr == addr:
                rows.remove(entry)
                self._local.discard(addr)
                self.deprecated.discard(addr)
                if len(addr) == 4:
                    self._broadcast = {b"\xff\xff\xff\xff"} | {
                        e.broadcast for e in rows if e.prefix_len < 31}
                return True
        return False

    def has_address(self, addr: bytes) -> bool:
        return addr in self._local

    def is_broadcast(self, addr: bytes) -> bool:
        return addr in self._broadcast

    def accepts(self, dst: bytes) -> bool:
        """Should a packet to ``dst`` be delivered locally on this NIC?"""
        return (dst in self._local or dst in self._broadcast or dst in self.multicast_groups
                or self.promiscuous)

    def join_group(self, group: bytes) -> None:
        """Accept ``group`` here (no report: :meth:`Stack.join_group` also tells IGMP/MLD)."""
        if group not in self.multicast_groups:
            self.multicast_groups.add(group)
            self._multicast_macs[_group_mac(group)] += 1

    def leave_group(self, group: bytes) -> None:
        if group in self.multicast_groups:
            self.multicast_groups.discard(group)
            mac = _group_mac(group)
            self._multicast_macs[mac] -= 1
            if self._multicast_macs[mac] <= 0:
                del self._multicast_macs[mac]

    def primary_address(self, size: int, remote: bytes | None = None) -> bytes | None:
        """Source address selection: same subnet first, then scope (RFC 6724, simplified)."""
        rows = self.addresses[size]
        if not rows:
            return None
        if self.deprecated:  # RFC 6724 rule 3: avoid deprecated addresses
            rows = [e for e in rows if e.addr not in self.deprecated] or rows
        if remote is not None:
            for entry in rows:
                if entry.contains(remote):
                    return entry.addr
            if size == 16:
                # RFC 6724 rule 2 (same scope), then rule 8 (longest matching prefix)
                want_link_local = ipv6_wire.is_link_local(remote) or (
                    ipv6_wire.is_multicast(remote) and (remote[1] & 0x0F) <= 2)
                scoped = [e for e in rows if ipv6_wire.is_link_local(e.addr) == want_link_local]
                if scoped:
                    value = int.from_bytes(remote, "big")
                    return max(scoped, key=lambda e: -(int.from_bytes(e.addr, "big")
                                                       ^ value).bit_length()).addr
        return rows[0].addr

    def all_addresses(self) -> Iterable[InterfaceAddress]:
        return [*self.addresses[4], *self.addresses[16]]

    # --- receive ------------------------------------------------------------------------

    def deliver_network_packet(self, ethertype: int, pkt: PacketBuffer) -> None:
        stats = self.stats.counters
        stats["rx_packets"] += 1
        stats["rx_bytes"] += pkt.payload_length
        if not self.enabled:
            self.stats.drop("nic", DropReason.LINK_DOWN)
            return
        ep = self.endpoints.get(ethertype)
        if ep is None:
            self.stats.drop("nic", DropReason.UNKNOWN_ETHERTYPE)
            self.stack.stats.drop("link", DropReason.UNKNOWN_ETHERTYPE)
            return
        if pkt.link_multicast and pkt.dst_link not in self._multicast_macs and (
                not self.promiscuous):
            stats["multicast_filtered"] += 1  # a group we did not join: as a NIC's filter
            return
        pkt.nic = self
        if self.rx_checksum_offload:
            pkt.checksum_verified = True
        ep.handle_packet(pkt)

    # --- send ---------------------------------------------------------------------------

    def write_packet(self, route: Route, pkt: PacketBuffer) -> None:
        """Send a packet whose network header is built: resolve the next hop, then write."""
        pkt.network_protocol = route.network_protocol
        if self.disabled_protocols and route.network_protocol in self.disabled_protocols:
            self.stats.drop("nic", DropReason.LINK_DOWN)
            return
        if not self.needs_resolution:
            self.send_resolved(pkt, b"")
            return
        link_addr = route.link_addr
        if link_addr is None:
            cache = self.neighbors.get(route.network_protocol)
            if cache is None:
                self.stats.drop("nic", DropReason.UNRESOLVED)
                return
            link_addr = cache.lookup(route.next_hop)
            if link_addr is None:
                cache.resolve(route.next_hop, route.local_addr, pkt)
                return
        self.send_resolved(pkt, link_addr)

    def send_resolved(self, pkt: PacketBuffer, link_addr: bytes) -> None:
        pkt.dst_link = link_addr
        stats = self.stats.counters
        if not self.enabled:
            self.stats.drop("nic", DropReason.LINK_DOWN)
            return
        if self.link.write_packets((pkt,)) == 1:
            stats["tx_packets"] += 1
            stats["tx_bytes"] += len(pkt)
        else:
            self.stats.drop("nic", DropReason.QUEUE_FULL)

    def neighbor_cache(self, ethertype: int = EtherType.IPV4) -> NeighborCache | None:
        return self.neighbors.get(ethertype)

    def close(self) -> None:
        for ep in self.endpoints.values():
            ep.close()
        for cache in self.neighbors.values():
            cache.clear()
        self.link.attach(None)


def _group_mac(group: bytes) -> bytes:
    return (ethernet.ipv4_multicast_mac(group) if len(group) == 4
            else ethernet.ipv6_multicast_mac(group))
