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
from ustack.network.multicast import MembershipProtocol, Record
from ustack.nic import NIC
from ustack.wire import ethernet
from ustack.wire import igmp as wire
from ustack.wire.errors import ParseError
from ustack.wire.proto import EtherType, IPProto

if TYPE_CHECKING:
    from ustack.stack import Stack

UNSOLICITED_INTERVAL_V3 = 1.0  # RFC 3376 8.11
UNSOLICITED_INTERVAL_V2 = 10.0  # RFC 2236 8.10


class IGMPProtocol(MembershipProtocol):
    """A TransportProtocol (number 2) and the GroupMembershipProtocol for IPv4."""

    number = IPProto.IGMP
    name = "igmp"
    address_size = wire.ADDRESS_SIZE
    newest = 3
    all_hosts = wire.ALL_SYSTEMS  # RFC 1112 7.2 / RFC 2236 6: joined, never reported
    ip_header_len = wire.IP_HEADER_LEN

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
            if not self.handle_query(nic, msg, pkt.dst_addr):
                return DeliveryResult.DROPPED
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

    def send_report(self, nic: NIC, records: list[Record]) -> None:
        self._send(nic, wire.V3_ROUTERS, wire.build_v3_report(records))

    def send_old_report(self, nic: NIC, version: int, group: bytes) -> None:
        kind = wire.V1_REPORT if version == 1 else wire.V2_REPORT
        self._send(nic, group, wire.build_v2(kind, group))

    def send_leave(self, nic: NIC, version: int, group: bytes) -> None:
        self._send(nic, wire.ALL_ROUTERS, wire.build_v2(wire.V2_LEAVE, group))

    def _send(self, nic: NIC, dst: bytes, message: bytes) -> None:
        # RFC 3376 4.2.13: 0.0.0.0 when the interface has no address yet
        src = nic.primary_address(4, dst) or wire.ANY

        def build() -> bytes:
            ident = getattr(self.stack.network_protocols.get(EtherType.IPV4), "next_ident",
                            None)
            return wire.build_packet(src, dst, message, ident() if ident is not None else 0)

        self._write(nic, EtherType.IPV4, src, dst, ethernet.ipv4_multicast_mac(dst), build)


def factory(stack: Stack) -> IGMPProtocol:
    proto = IGMPProtocol(stack)
    stack.register_transport_protocol(proto)
    return proto
