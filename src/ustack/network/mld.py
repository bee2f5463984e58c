# SPDX-License-Identifier: MIT
"""MLD as a host (RFC 3810 sections 6 and 8; RFC 2710 in compatibility mode).

MLD rides in ICMPv6: the ICMPv6 handler passes types 130, 131, 132 and 143 here,
and the shared state machine in :mod:`ustack.network.multicast` does the rest.
Reports leave from a link-local source with hop limit 1 and a hop-by-hop Router
Alert (RFC 3810 5, RFC 2711).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.network.multicast import GroupManager, QueryInfo, Record
from ustack.route import Route
from ustack.wire import ethernet
from ustack.wire import ipv6 as ip_wire
from ustack.wire import mld as wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import EtherType

if TYPE_CHECKING:
    from ustack.network.ipv6 import IPv6Endpoint
    from ustack.nic import NIC
    from ustack.stack import Stack

UNSOLICITED_INTERVAL_V2 = 1.0  # RFC 3810 9.11
UNSOLICITED_INTERVAL_V1 = 10.0  # RFC 2710 7.10


class MLDProtocol:
    """The GroupMembershipProtocol for IPv6."""

    name = "mld"
    address_size = 16
    newest = 2

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.groups = GroupManager(stack, self)

    def join(self, nic: NIC, group: bytes) -> None:
        self.groups.join(nic, group)

    def leave(self, nic: NIC, group: bytes) -> bool:
        return self.groups.leave(nic, group)

    def nic_enabled(self, nic: NIC) -> None:
        self.groups.join(nic, wire.ALL_NODES)  # RFC 4861 7.2.1; never reported

    def nic_removed(self, nic_id: int) -> None:
        self.groups.nic_removed(nic_id)

    # --- receiving (called by the ICMPv6 handler) ----------------------------------------------

    def handle(self, ep: IPv6Endpoint, pkt: PacketBuffer, body: memoryview) -> None:
        stats = self.stack.stats
        try:
            msg = wire.parse(body, pkt.src_addr, pkt.dst_addr, verify_checksum=False)
        except ParseError as err:
            stats.drop("mld", err.reason)
            return
        stats.count("mld.rx")
        # RFC 3810 5.1.14 / 5.2.13: link-local sources only; hop limit 1 (as Linux checks)
        if not ip_wire.is_link_local(pkt.src_addr) or pkt.ttl != 1:
            stats.drop("mld", DropReason.BAD_ADDRESS)
            return
        if isinstance(msg, wire.Query):
            if (msg.is_general and pkt.dst_addr != wire.ALL_NODES) or (
                    not msg.is_general and pkt.dst_addr not in (msg.group, wire.ALL_NODES)):
                stats.drop("mld", DropReason.BAD_ADDRESS)  # RFC 3810 5.1.15
                return
            self.groups.handle_query(ep.nic, QueryInfo(msg.version, msg.max_resp, msg.group,
                                                       msg.qrv, msg.qqi, msg.sources))
        elif isinstance(msg, wire.Report) and msg.type == wire.V1_REPORT:
            self.groups.handle_report(ep.nic, msg.group)
        else:
            stats.count("mld.rx_ignored")

    # --- Messenger -----------------------------------------------------------------------------

    def reportable(self, group: bytes) -> bool:
        """RFC 3810 6: never all-nodes, nor reserved or interface-local scopes."""
        return group != wire.ALL_NODES and (group[1] & 0x0F) > 1

    def unsolicited_interval(self, version: int) -> float:
        return UNSOLICITED_INTERVAL_V2 if version == 2 else UNSOLICITED_INTERVAL_V1

    def has_leave(self, version: int) -> bool:
        return version == 1

    def send_records(self, nic: NIC, records: list[Record]) -> None:
        src = self._source(nic)
        room = nic.link.mtu - wire.IP_HEADER_LEN
        rows = [wire.AddressRecord(r.type, r.group, r.sources) for r in records]
        for batch in wire.split_records(rows, room):
            self._send(nic, src, wire.V2_ROUTERS,
                       wire.build_v2_report(batch, src, wire.V2_ROUTERS))
            self.stack.stats.count("mld.tx_v2_report")

    def send_old_report(self, nic: NIC, version: int, group: bytes) -> None:
        src = self._source(nic)
        self._send(nic, src, group, wire.build_v1(wire.V1_REPORT, group, src, group))

    def send_leave(self, nic: NIC, version: int, group: bytes) -> None:
        src = self._source(nic)
        self._send(nic, src, wire.ALL_ROUTERS,
                   wire.build_v1(wire.V1_DONE, group, src, wire.ALL_ROUTERS))

    @staticmethod
    def _source(nic: NIC) -> bytes:
        """RFC 3810 5.2.13: a link-local source, or :: while there is none."""
        return next((e.addr for e in nic.addresses[16] if ip_wire.is_link_local(e.addr)),
                    wire.ANY)

    def _send(self, nic: NIC, src: bytes, dst: bytes, message: bytes) -> None:
        ep = nic.endpoints.get(EtherType.IPV6)
        if ep is None:
            return
        packet = wire.build_packet(src, dst, message)
        route = Route(nic, ep, EtherType.IPV6, src, dst, dst,
                      link_addr=ethernet.ipv6_multicast_mac(dst))
        nic.write_packet(route, PacketBuffer(nic.link.max_header_length, packet))
        self.stack.stats.count("mld.tx")


def factory(stack: Stack) -> MLDProtocol:
    proto = MLDProtocol(stack)
    ipv6 = stack.network_protocols.get(EtherType.IPV6)
    icmp = getattr(ipv6, "icmp", None)
    if icmp is not None:
        for kind in wire.TYPES:
            icmp.handlers[kind] = proto.handle
    return proto
