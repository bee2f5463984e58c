# SPDX-License-Identifier: MIT
"""UDP (RFC 768; RFC 1122 4.1; IPv6 checksum rules of RFC 8200 8.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.contracts import DeliveryResult
from ustack.route import Route
from ustack.transport.datagram import DatagramEndpoint, is_multicast
from ustack.wire import checksum
from ustack.wire import udp as wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.stack import Stack

#: the largest payload: 65535 minus the IP (20 or 40) and UDP (8) headers
MAX_PAYLOAD = {4: 65507, 16: 65527}


class UDPProtocol:
    number = IPProto.UDP
    name = "udp"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        #: set by the guest-forwarding mode: called for datagrams with no endpoint
        self.forwarder: object | None = None

    def parse_ports(self, pkt: PacketBuffer) -> tuple[int, int] | None:
        """Validate length and checksum once, before demux (RFC 768, RFC 1122 4.1.3.4)."""
        body = pkt.body()
        try:
            hdr = wire.parse(body, pkt.src_addr, pkt.dst_addr,
                             verify_checksum=not pkt.checksum_verified)
        except ParseError as err:
            self.stack.stats.drop("udp", err.reason)
            return None
        pkt.trim(hdr.length)
        self.stack.stats.counters["udp.rx"] += 1
        return hdr.src_port, hdr.dst_port

    def handle_unknown_destination(self, pkt: PacketBuffer) -> DeliveryResult:
        handler = getattr(self.forwarder, "handle_udp", None)
        if handler is not None and handler(pkt):
            return DeliveryResult.DELIVERED
        self.stack.stats.drop("udp", DropReason.NO_LISTENER)
        return DeliveryResult.PORT_UNREACHABLE

    def new_endpoint(self, size: int) -> UDPEndpoint:
        return UDPEndpoint(self.stack, size)


def factory(stack: Stack) -> UDPProtocol:
    return UDPProtocol(stack)


class UDPEndpoint(DatagramEndpoint):
    protocol_number = IPProto.UDP
    layer = "udp"

    def handle_packet(self, pkt: PacketBuffer) -> None:
        body = pkt.body()
        sport = int.from_bytes(body[0:2], "big")
        if self.on_packet is not None:
            self.on_packet(bytes(body[wire.HEADER_LEN:]), sport, pkt)
            return
        self.deliver(bytes(body[wire.HEADER_LEN:]), (pkt.src_addr, sport))

    def send_datagram(self, route: Route, data: bytes, port: int) -> None:
        if len(data) > MAX_PAYLOAD[self.size]:
            import errno

            raise OSError(errno.EMSGSIZE, "Message too long")
        pkt = PacketBuffer(route.max_header_length + wire.HEADER_LEN, data)
        length = wire.HEADER_LEN + len(data)
        header = pkt.prepend(wire.HEADER_LEN)
        initial = checksum.pseudo_header_sum(route.local_addr, route.remote_addr, IPProto.UDP,
                                             length)
        if route.checksum_offload:
            # leave the pseudo-header sum for the link to finish (virtio NEEDS_CSUM)
            wire.HEADER.pack_into(header, 0, self.local_port, port, length, initial)
            pkt.csum_partial = (length, 6)
        else:
            wire.HEADER.pack_into(header, 0, self.local_port, port, length, 0)
            csum = checksum.checksum(data, checksum.ones_sum(header, initial)) or 0xFFFF
            wire.HEADER.pack_into(header, 0, self.local_port, port, length, csum)
        self.stack.stats.counters["udp.tx"] += 1
        if not is_multicast(route.remote_addr):
            route.write_packet(pkt, IPProto.UDP, self.ttl, self.tos)
            return
        nic = route.nic
        if self.multicast_loop and route.remote_addr in nic.multicast_groups:
            # IP_MULTICAST_LOOP: members on this host get a copy (no wire crossed)
            local = Route(nic, route.net_ep, route.network_protocol, route.local_addr,
                          route.remote_addr, route.remote_addr, is_local=True)
            copy = PacketBuffer(route.max_header_length, pkt.to_bytes())
            local.write_packet(copy, IPProto.UDP, 1, self.tos)
            self.stack.stats.count("udp.tx_multicast_looped")
        if self.multicast_ttl > 0:  # TTL 0: this host only
            route.write_packet(pkt, IPProto.UDP, self.multicast_ttl, self.tos)
            self.stack.stats.count("udp.tx_multicast")
