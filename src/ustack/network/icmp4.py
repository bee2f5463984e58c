# SPDX-License-Identifier: MIT
"""ICMPv4 for the IPv4 endpoint: echo replies, errors sent (rate-limited), errors received."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.contracts import ControlKind, ControlMessage
from ustack.network.ratelimit import TokenBucket
from ustack.wire import checksum
from ustack.wire import icmp4 as wire
from ustack.wire import ipv4 as ip_wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.network.ipv4 import IPv4Endpoint, IPv4Protocol
    from ustack.stack import Stack

#: RFC 1812 4.3.2.3: quote as much of the offending packet as fits in 576 bytes.
MAX_ERROR_PACKET = 576

_UNREACHABLE_KINDS = {
    wire.NET_UNREACHABLE: ControlKind.NET_UNREACHABLE,
    wire.HOST_UNREACHABLE: ControlKind.HOST_UNREACHABLE,
    wire.PROTOCOL_UNREACHABLE: ControlKind.PROTOCOL_UNREACHABLE,
    wire.PORT_UNREACHABLE: ControlKind.PORT_UNREACHABLE,
    wire.FRAGMENTATION_NEEDED: ControlKind.PACKET_TOO_BIG,
}


#: RFC 791: "Every internet module must be able to forward a datagram of 68 octets"
MIN_LINK_MTU = 68
#: RFC 1191 section 7: common MTU plateaus, to estimate an unreported next-hop MTU
MTU_PLATEAUS = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)


def plateau_below(total_length: int) -> int:
    """The largest plateau smaller than a datagram that did not fit (RFC 1191 section 5)."""
    return next((p for p in MTU_PLATEAUS if p < total_length), MTU_PLATEAUS[-1])


class ICMPv4Handler:
    def __init__(self, stack: Stack, protocol: IPv4Protocol) -> None:
        self.stack = stack
        self.protocol = protocol
        opts = stack.options
        self.limiter = TokenBucket(opts.icmp_rate, opts.icmp_burst, stack.clock.now())
        self.protocol.reassembler.on_timeout = self._reassembly_timeout

    def handle(self, ep: IPv4Endpoint, pkt: PacketBuffer) -> None:
        stats = self.stack.stats
        body = pkt.body()
        try:
            hdr = wire.parse(body)
        except ParseError as err:
            stats.drop("icmp4", err.reason)
            return
        stats.count(f"icmp4.rx_type_{hdr.type}")
        if hdr.type == wire.ECHO_REQUEST:
            if ep.nic.has_address(pkt.dst_addr):
                self._echo_reply(ep, pkt, body)
            elif not ep.nic.is_broadcast(pkt.dst_addr):
                # not for us: offer it to the transport layer (the guest forwarder)
                self._offer_to_forwarder(pkt)
            else:
                stats.count("icmp4.echo_broadcast_ignored")
        elif hdr.type == wire.ECHO_REPLY:
            ep.dispatcher.deliver_transport_packet(IPProto.ICMP, pkt)
        elif hdr.type in (wire.DEST_UNREACHABLE, wire.TIME_EXCEEDED, wire.PARAMETER_PROBLEM):
            self._error_received(ep, pkt, hdr, body)

    def _echo_reply(self, ep: IPv4Endpoint, pkt: PacketBuffer, body: memoryview) -> None:
        reply = bytearray(body)
        reply[0] = wire.ECHO_REPLY
        reply[2:4] = b"\x00\x00"
        reply[2:4] = checksum.checksum(reply).to_bytes(2, "big")
        self._send(ep, pkt.dst_addr, pkt.src_addr, bytes(reply), tos=pkt.tos)
        self.stack.stats.count("icmp4.echo_replied")

    def _error_received(self, ep: IPv4Endpoint, pkt: PacketBuffer, hdr: wire.ICMPv4Header,
                        body: memoryview) -> None:
        quoted = body[wire.HEADER_LEN:]
        try:
            inner = ip_wire.parse(quoted, verify_checksum=False, quoted=True)
        except ParseError as err:
            self.stack.stats.drop("icmp4", err.reason)
            return
        ports = bytes(quoted[inner.header_length:inner.header_length + 8])
        if len(ports) < 4 or inner.fragment_offset:
            self.stack.stats.drop("icmp4", DropReason.TRUNCATED)
            return
        if hdr.type == wire.DEST_UNREACHABLE:
            kind = _UNREACHABLE_KINDS.get(hdr.code, ControlKind.HOST_UNREACHABLE)
            if hdr.code in (9, 10, 13):
                kind = ControlKind.ADMIN_PROHIBITED
        elif hdr.type == wire.TIME_EXCEEDED:
            kind = ControlKind.TTL_EXCEEDED
        else:
            kind = ControlKind.PARAMETER_PROBLEM
        mtu = 0
        pmtu = self.protocol.pmtu
        staged = pmtu.entry(inner.dst)
        if kind is ControlKind.PACKET_TOO_BIG:
            # RFC 1191: the next-hop MTU is in the low 16 bits of the rest field; zero
            # from a router that predates RFC 1191 (section 5: estimate from a plateau)
            reported = hdr.rest_lo or plateau_below(inner.total_length)
            if reported < MIN_LINK_MTU:
                # RFC 791: every link carries 68 bytes; a smaller "MTU" is bogus
                self.stack.stats.drop("icmp4", DropReason.BAD_MESSAGE)
                self.stack.stats.count("icmp4.ptb_below_minimum")
                return
            # Staged: the transport confirms the quoted packet is its own (RFC 5927 4.1)
            # or the cache is put back as it was, below.
            mtu = pmtu.update(inner.dst, reported)
        if inner.protocol == IPProto.ICMP:
            local_port = remote_port = int.from_bytes(ports[4:6], "big")  # echo identifier
        else:
            local_port = int.from_bytes(ports[0:2], "big")
            remote_port = int.from_bytes(ports[2:4], "big")
        msg = ControlMessage(kind, inner.src, inner.dst, local_port, remote_port, mtu,
                             ports, pkt.src_addr)
        self.stack.stats.count("icmp4.errors_received")
        accepted = ep.dispatcher.deliver_transport_control(inner.protocol, msg, pkt)
        if kind is ControlKind.PACKET_TOO_BIG and not accepted:
            pmtu.restore(inner.dst, staged)
            self.stack.stats.count("icmp4.ptb_rejected")

    def _offer_to_forwarder(self, pkt: PacketBuffer) -> None:
        """An echo request for an address that is not ours (the guest-forwarding mode)."""
        proto = self.stack.transport_protocols.get(IPProto.ICMP)
        if proto is None:
            self.stack.stats.drop("icmp4", DropReason.NOT_FOR_US)
            return
        proto.handle_unknown_destination(pkt)

    # --- sending errors ------------------------------------------------------------------------

    def send_error(self, ep: IPv4Endpoint, pkt: PacketBuffer, kind: int, code: int,
                   rest: int = 0) -> None:
        """RFC 1122 3.2.2: never about ICMP errors, broadcasts, later fragments or bad sources."""
        stats = self.stack.stats
        src, dst = pkt.src_addr, pkt.dst_addr
        nic = ep.nic
        original = pkt.frame()[pkt.network_offset:]  # up to the datagram's end: no padding
        if (pkt.link_multicast or nic.is_broadcast(dst) or ip_wire.is_multicast(dst)
                or not any(src) or ip_wire.is_multicast(src) or nic.is_broadcast(src)):
            stats.count("icmp4.error_suppressed")
            return
        if pkt.transport_protocol == IPProto.ICMP:
            offset = pkt.transport_offset
            if offset < len(pkt.payload) and pkt.payload[offset] not in (
                    wire.ECHO_REQUEST, wire.ECHO_REPLY):
                stats.count("icmp4.error_suppressed")
                return
        if not self.limiter.take(self.stack.clock.now()):
            stats.drop("icmp4", DropReason.RATE_LIMITED)
            return
        quote = bytes(original[:MAX_ERROR_PACKET - ip_wire.MIN_HEADER_LEN - wire.HEADER_LEN])
        message = wire.build(kind, code, rest >> 16, rest & 0xFFFF, quote)
        self._send(ep, dst if nic.has_address(dst) else None, src, message)
        stats.count(f"icmp4.tx_error_{kind}_{code}")

    def _reassembly_timeout(self, quoted: bytes) -> None:
        """RFC 792: time exceeded (code 1) when a datagram's fragments time out."""
        try:
            inner = ip_wire.parse(quoted, verify_checksum=False, quoted=True)
        except ParseError:
            return
        nic = self.stack.local_nic(inner.dst)
        if nic is None:
            return
        start = inner.header_length
        if inner.protocol == IPProto.ICMP and len(quoted) > start and quoted[start] not in (
                wire.ECHO_REQUEST, wire.ECHO_REPLY):  # RFC 1122 3.2.2: not about an error
            self.stack.stats.count("icmp4.error_suppressed")
            return
        if not self.limiter.take(self.stack.clock.now()):
            return
        ep = nic.endpoints[self.protocol.number]
        message = wire.build(wire.TIME_EXCEEDED, 1, 0, 0, quoted)
        self._send(ep, inner.dst, inner.src, message)  # type: ignore[arg-type]

    def _send(self, ep: IPv4Endpoint, src: bytes | None, dst: bytes, message: bytes,
              tos: int = 0) -> None:
        try:
            route = self.stack.find_route(dst, src, ep.nic.id)
        except OSError:
            self.stack.stats.drop("icmp4", DropReason.NO_ROUTE)
            return
        out = PacketBuffer(route.max_header_length, message)
        route.write_packet(out, IPProto.ICMP, tos=tos)
