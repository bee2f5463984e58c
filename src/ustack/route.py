# SPDX-License-Identifier: MIT
"""Routes: the table (longest prefix match) and the resolved Route a packet is sent on."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.contracts import LinkCapabilities, NetworkEndpoint
from ustack.wire import checksum

if TYPE_CHECKING:
    from ustack.nic import NIC


@dataclass(frozen=True)
class RouteEntry:
    """One row of the table: ``prefix/length`` via ``gateway`` (None: on-link) out of ``nic_id``."""

    prefix: bytes
    length: int
    gateway: bytes | None
    nic_id: int
    metric: int = 0

    def __str__(self) -> str:
        net = ipaddress.ip_network((self.prefix, self.length))
        via = f" via {ipaddress.ip_address(self.gateway)}" if self.gateway else ""
        return f"{net}{via} nic {self.nic_id} metric {self.metric}"


def mask(addr: bytes, length: int) -> int:
    bits = len(addr) * 8
    return int.from_bytes(addr, "big") >> (bits - length) if length else 0


class RouteTable:
    """Longest-prefix match as one dict probe per distinct prefix length in use."""

    def __init__(self) -> None:
        # per address size (4 or 16): {prefix length: {masked prefix: [entries by metric]}}
        self._tables: dict[int, dict[int, dict[int, list[RouteEntry]]]] = {4: {}, 16: {}}
        self._lengths: dict[int, list[int]] = {4: [], 16: []}

    def add(self, entry: RouteEntry) -> None:
        size = len(entry.prefix)
        by_len = self._tables[size].setdefault(entry.length, {})
        rows = by_len.setdefault(mask(entry.prefix, entry.length), [])
        if entry not in rows:
            rows.append(entry)
            rows.sort(key=lambda e: e.metric)
        self._lengths[size] = sorted(self._tables[size], reverse=True)

    def remove(self, entry: RouteEntry) -> bool:
        size = len(entry.prefix)
        by_len = self._tables[size].get(entry.length, {})
        rows = by_len.get(mask(entry.prefix, entry.length), [])
        if entry not in rows:
            return False
        rows.remove(entry)
        if not rows:
            del by_len[mask(entry.prefix, entry.length)]
        if not by_len:
            self._tables[size].pop(entry.length, None)
            self._lengths[size] = sorted(self._tables[size], reverse=True)
        return True

    def remove_nic(self, nic_id: int) -> None:
        for entry in [e for e in self.entries() if e.nic_id == nic_id]:
            self.remove(entry)

    def lookup(self, dst: bytes, nic_id: int | None = None) -> RouteEntry | None:
        size = len(dst)
        tables = self._tables[size]
        value = int.from_bytes(dst, "big")
        bits = size * 8
        for length in self._lengths[size]:
            rows = tables[length].get(value >> (bits - length) if length else 0)
            if rows:
                for entry in rows:
                    if nic_id is None or entry.nic_id == nic_id:
                        return entry
        return None

    def entries(self) -> list[RouteEntry]:
        return [e for size in (4, 16) for length in self._lengths[size]
                for rows in self._tables[size][length].values() for e in rows]


class Route:
    """A resolved path: which NIC, which addresses, which next hop. Cached by connected sockets."""

    __slots__ = (
        "address_sum",
        "checksum_offload",
        "is_local",
        "link_addr",
        "local_addr",
        "net_ep",
        "network_protocol",
        "next_hop",
        "nic",
        "remote_addr",
    )

    def __init__(self, nic: NIC, net_ep: NetworkEndpoint, network_protocol: int,
                 local_addr: bytes, remote_addr: bytes, next_hop: bytes,
                 is_local: bool = False, link_addr: bytes | None = None) -> None:
        self.nic = nic
        self.net_ep = net_ep
        self.network_protocol = network_protocol
        self.local_addr = local_addr
        self.remote_addr = remote_addr
        self.next_hop = next_hop
        self.is_local = is_local
        #: a link address fixed in advance (broadcast, multicast, or a known neighbor):
        #: packets on this route skip neighbor resolution
        self.link_addr = link_addr
        #: transport checksums may be left partial: the link (or no wire at all) finishes
        #: them; fixed per route, as a link's capabilities do not change
        self.checksum_offload = is_local or nic.tx_checksum_offload
        #: the addresses' part of the transport pseudo-header sum (RFC 9293 3.1, RFC 8200
        #: 8.1), the same for every packet on the route
        self.address_sum = checksum.ones_sum(local_addr + remote_addr)

    @property
    def mtu(self) -> int:
        """Largest transport payload (plus its header) that fits unfragmented."""
        return self.net_ep.mtu

    @property
    def max_header_length(self) -> int:
        return self.net_ep.max_header_length

    @property
    def capabilities(self) -> LinkCapabilities:
        return self.nic.link.capabilities

    def write_packet(self, pkt: PacketBuffer, protocol: int, ttl: int = 0, tos: int = 0) -> None:
        """Send a transport packet (headers from the transport layer down still to add)."""
        self.net_ep.write_packet(self, pkt, protocol, ttl, tos)

    def __repr__(self) -> str:
        return (f"Route({ipaddress.ip_address(self.local_addr)} -> "
                f"{ipaddress.ip_address(self.remote_addr)} via "
                f"{ipaddress.ip_address(self.next_hop)} on {self.nic.name})")
