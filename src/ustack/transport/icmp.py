# SPDX-License-Identifier: MIT
"""ICMP echo endpoints: Linux-style "ping sockets" (SOCK_DGRAM with IPPROTO_ICMP/ICMPV6).

The socket's local port is the echo identifier. ``sendto`` takes an ICMP echo
request (the identifier is overwritten, the checksum computed); ``recvfrom``
returns echo replies whose identifier matches, header included.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.contracts import DeliveryResult
from ustack.route import Route
from ustack.transport.datagram import DatagramEndpoint
from ustack.wire import checksum, icmp4, icmp6
from ustack.wire.errors import DropReason
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.stack import Stack


class ICMPEchoProtocol:
    name = "icmp"

    def __init__(self, stack: Stack, number: int) -> None:
        self.stack = stack
        self.number = number
        self.name = "icmp4" if number == IPProto.ICMP else "icmp6"
        self._reply = icmp4.ECHO_REPLY if number == IPProto.ICMP else icmp6.ECHO_REPLY
        #: set by the guest-forwarding mode: called for echo requests not for us
        self.forwarder: object | None = None

    def parse_ports(self, pkt: PacketBuffer) -> tuple[int, int] | None:
        body = pkt.body()
        if len(body) < 8:
            self.stack.stats.drop(self.name, DropReason.TRUNCATED)
            return None
        # only echo replies are demultiplexed: the identifier is the local "port"
        return 0, int.from_bytes(body[4:6], "big")

    def handle_unknown_destination(self, pkt: PacketBuffer) -> DeliveryResult:
        handler = getattr(self.forwarder, "handle_echo", None)
        if handler is not None and handler(pkt):
            return DeliveryResult.DELIVERED
        self.stack.stats.count(f"{self.name}.echo_unmatched")
        return DeliveryResult.DROPPED

    def new_endpoint(self, size: int) -> ICMPEchoEndpoint:
        return ICMPEchoEndpoint(self.stack, size, self.number)


def factory4(stack: Stack) -> ICMPEchoProtocol:
    return ICMPEchoProtocol(stack, IPProto.ICMP)


def factory6(stack: Stack) -> ICMPEchoProtocol:
    return ICMPEchoProtocol(stack, IPProto.ICMPV6)


class ICMPEchoEndpoint(DatagramEndpoint):
    def __init__(self, stack: Stack, size: int, number: int) -> None:
        self.protocol_number = number
        self.layer = "icmp4" if number == IPProto.ICMP else "icmp6"
        super().__init__(stack, size)

    def handle_packet(self, pkt: PacketBuffer) -> None:
        self.deliver(bytes(pkt.body()), (pkt.src_addr, 0))

    def send_datagram(self, route: Route, data: bytes, port: int) -> None:
        request = icmp4.ECHO_REQUEST if self.size == 4 else icmp6.ECHO_REQUEST
        if len(data) < 8 or data[0] != request or data[1] != 0:
            raise OSError(errno.EINVAL, "Invalid argument: not an ICMP echo request")
        message = bytearray(data)
        message[2:4] = b"\0\0"
        message[4:6] = self.local_port.to_bytes(2, "big")
        initial = 0
        if self.size == 16:
            initial = checksum.pseudo_header_sum(route.local_addr, route.remote_addr,
                                                 IPProto.ICMPV6, len(message))
        message[2:4] = checksum.checksum(message, initial).to_bytes(2, "big")
        pkt = PacketBuffer(route.max_header_length, bytes(message))
        self.stack.stats.count(f"{self.layer}.echo_sent")
        route.write_packet(pkt, self.protocol_number, self.ttl, self.tos)
