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
from ustack.network.multicast import MembershipProtocol, Record
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


class MLDProtocol(MembershipProtocol):
    """The GroupMembershipProtocol for IPv6."""

    name = "mld"
    address_size = wire.ADDRESS_SIZE
    newest = 2
    all_hosts = wire.ALL_NODES  # RFC 4861 7.2.1: joined, never reported
    ip_header_len = wire.IP_HEADER_LEN

    # --- receiving (called by the ICMPv6 handler) ----------------------------------------------

    def handle(self, ep: IPv6Endpoint, pkt: PacketBuffer, body: memoryview) -> None:
        stats = self.stack.stats
        try:
            msg = wire.parse(body, pkt.src_addr, pkt.dst_addr, verify_checksum=False)
        except ParseError as err:
            stats.drop("mld", err.reason)
            return
        stats.count("mld.rx")
        # RFC 3810 5.2.13: a node still doing DAD reports from :: (Linux does at start-up);
        # such reports are valid but carry nothing a host acts on.
        if pkt.src_addr == ip_wire.ANY and not isinstance(msg, wire.Query) and pkt.ttl == 1:
            stats.count("mld.rx_ignored")
            return
        # RFC 3810 5.1.14 / 5.2.13: link-local sources otherwise; hop limit 1 (as Linux checks)
        if not ip_wire.is_link_local(pkt.src_addr) or pkt.ttl != 1:
            stats.drop("mld", DropReason.BAD_ADDRESS)
            return
        if isinstance(msg, wire.Query):
            self.handle_query(ep.nic, msg, pkt.dst_addr)
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

    def send_report(self, nic: NIC, records: list[Record]) -> None:
        src = self._source(nic)
        self._send(nic, src, wire.V2_ROUTERS, wire.build_v2_report(records, src, wire.V2_ROUTERS))

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
        self._write(nic, EtherType.IPV6, src, dst, ethernet.ipv6_multicast_mac(dst),
                    lambda: wire.build_packet(src, dst, message))


def factory(stack: Stack) -> MLDProtocol:
    proto = MLDProtocol(stack)
    ipv6 = stack.network_protocols.get(EtherType.IPV6)
    icmp = getattr(ipv6, "icmp", None)
    if icmp is not None:
        for kind in wire.TYPES:
            icmp.handlers[kind] = proto.handle
    return proto
