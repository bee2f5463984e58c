# SPDX-License-Identifier: MIT
"""IGMP as a host (RFC 3376 sections 5 and 7; RFC 2236 and RFC 1112 in compatibility mode).

Registered with the stack as IP protocol 2: every IGMP packet reaches
:meth:`IGMPProtocol.handle_unknown_destination` (no endpoint ever binds), which
hands queries and other hosts' reports to the shared state machine in
:mod:`ustack.network.multicast`. Reports leave with TTL 1 and Router Alert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.contracts import DeliveryResult
from ustack.network.multicast import GroupManager, QueryInfo, Record
from ustack.nic import NIC
from ustack.route import Route
from ustack.wire import ethernet
from ustack.wire import igmp as wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import EtherType, IPProto

if TYPE_CHECKING:
    from ustack.stack import Stack

UNSOLICITED_INTERVAL_V3 = 1.0  # RFC 3376 8.11
UNSOLICITED_INTERVAL_V2 = 10.0  # RFC 2236 8.10


class IGMPProtocol:
    """A TransportProtocol (number 2) and the GroupMembershipProtocol for IPv4."""

    number = IPProto.IGMP
    name = "igmp"
    address_size = 4
    newest = 3

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.groups = GroupManager(stack, self)

    # --- GroupMembershipProtocol ---------------------------------------------------------------

    def join(self, nic: NIC, group: bytes) -> None:
        self.groups.join(nic, group)

    def leave(self, nic: NIC, group: bytes) -> bool:
        return self.groups.leave(nic, group)

    def nic_enabled(self, nic: NIC) -> None:
        """RFC 1112 7.2 / RFC 2236 6: all-systems is joined on every interface, never reported."""
        self.groups.join(nic, wire.ALL_SYSTEMS)

    def nic_removed(self, nic_id: int) -> None:
        self.groups.nic_removed(nic_id)

    # --- TransportProtocol ---------------------------------------------------------------------

    def parse_ports(self, pkt: PacketBuffer) -> tuple[int, int] | None:
        return 0, 0  # no ports: everything goes to handle_unknown_destination

    def handle_unknown_destination(self, pkt: PacketBuffer) -> DeliveryResult:
        stats = self.stack.stats
        nic = pkt.nic
        if not isinstance(nic, NIC):
            return DeliveryResult.DROPPED
        try:
            msg = wire.parse(pkt.body(), verify_checksum=True)
        except ParseError as err:
            stats.drop("igmp", err.reason)
            return DeliveryResult.DROPPED
        stats.count("igmp.rx")
        if isinstance(msg, wire.Query):
            # RFC 3376 4.1.12: general queries go to all-systems, group queries to the group
            if (msg.is_general and pkt.dst_addr != wire.ALL_SYSTEMS) or (
                    not msg.is_general and pkt.dst_addr not in (msg.group, wire.ALL_SYSTEMS)):
                stats.drop("igmp", DropReason.BAD_ADDRESS)
                return DeliveryResult.DROPPED
            self.groups.handle_query(nic, QueryInfo(msg.version, msg.max_resp, msg.group,
                                                    msg.qrv, msg.qqi, msg.sources))
        elif isinstance(msg, wire.Report) and msg.type in (wire.V1_REPORT, wire.V2_REPORT):
            self.groups.handle_report(nic, msg.group)
        else:
            stats.count("igmp.rx_ignored")  # leaves and v3 reports are for routers
        return DeliveryResult.DELIVERED

    # --- Messenger (what the state machine asks us to send) -----------------------------------

    def reportable(self, group: bytes) -> bool:
        return group != wire.ALL_SYSTEMS  # RFC 3376 5 / RFC 2236 6

    def unsolicited_interval(self, version: int) -> float:
        return UNSOLICITED_INTERVAL_V3 if version == 3 else UNSOLICITED_INTERVAL_V2

    def has_leave(self, version: int) -> bool:
        return version == 2

    def send_records(self, nic: NIC, records: list[Record]) -> None:
        room = nic.link.mtu - wire.IP_HEADER_LEN
        rows = [wire.GroupRecord(r.type, r.group, r.sources) for r in records]
        for batch in wire.split_records(rows, room):
            self._send(nic, wire.V3_ROUTERS, wire.build_v3_report(batch))
            self.stack.stats.count("igmp.tx_v3_report")

    def send_old_report(self, nic: NIC, version: int, group: bytes) -> None:
        kind = wire.V1_REPORT if version == 1 else wire.V2_REPORT
        self._send(nic, group, wire.build_v2(kind, group))

    def send_leave(self, nic: NIC, version: int, group: bytes) -> None:
        self._send(nic, wire.ALL_ROUTERS, wire.build_v2(wire.V2_LEAVE, group))

    def _send(self, nic: NIC, dst: bytes, message: bytes) -> None:
        ep = nic.endpoints.get(EtherType.IPV4)
        if ep is None:
            return
        # RFC 3376 4.2.13: 0.0.0.0 when the interface has no address yet
        src = nic.primary_address(4, dst) or wire.ANY
        ident = getattr(self.stack.network_protocols.get(EtherType.IPV4), "next_ident", None)
        packet = wire.build_packet(src, dst, message, ident() if ident is not None else 0)
        route = Route(nic, ep, EtherType.IPV4, src, dst, dst,
                      link_addr=ethernet.ipv4_multicast_mac(dst))
        nic.write_packet(route, PacketBuffer(nic.link.max_header_length, packet))
        self.stack.stats.count("igmp.tx")


def factory(stack: Stack) -> IGMPProtocol:
    proto = IGMPProtocol(stack)
    stack.register_transport_protocol(proto)
    return proto
