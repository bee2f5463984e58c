# SPDX-License-Identifier: MIT
"""ICMPv6 (RFC 4443) for the IPv6 endpoint: echo, errors in and out; NDP is handed to ndp.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.contracts import ControlKind, ControlMessage
from ustack.network.ratelimit import TokenBucket
from ustack.route import Route
from ustack.wire import icmp6 as wire
from ustack.wire import ipv6 as ip_wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.network.ipv6 import IPv6Endpoint, IPv6Protocol
    from ustack.stack import Stack

_UNREACHABLE_KINDS = {
    wire.NO_ROUTE: ControlKind.NET_UNREACHABLE,
    wire.ADMIN_PROHIBITED: ControlKind.ADMIN_PROHIBITED,
    wire.ADDRESS_UNREACHABLE: ControlKind.HOST_UNREACHABLE,
    wire.PORT_UNREACHABLE: ControlKind.PORT_UNREACHABLE,
}
_NDP_TYPES = frozenset({wire.ROUTER_SOLICITATION, wire.ROUTER_ADVERTISEMENT,
                        wire.NEIGHBOR_SOLICITATION, wire.NEIGHBOR_ADVERTISEMENT,
                        wire.REDIRECT})


class ICMPv6Handler:
    def __init__(self, stack: Stack, protocol: IPv6Protocol) -> None:
        self.stack = stack
        self.protocol = protocol
        opts = stack.options
        self.limiter = TokenBucket(opts.icmp_rate, opts.icmp_burst, stack.clock.now())
        protocol.reassembler.on_timeout = self._reassembly_timeout
        #: informational types handled elsewhere (MLD registers 130-132 and 143 here)
        self.handlers: dict[int, Callable[[IPv6Endpoint, PacketBuffer, memoryview], None]] = {}

    def handle(self, ep: IPv6Endpoint, pkt: PacketBuffer) -> None:
        stats = self.stack.stats
        body = pkt.body()
        try:
            hdr = wire.parse(body, pkt.src_addr, pkt.dst_addr)
        except ParseError as err:
            stats.drop("icmp6", err.reason)
            return
        stats.count(f"icmp6.rx_type_{hdr.type}")
        kind = hdr.type
        if kind == wire.ECHO_REQUEST:
            if ep.nic.has_address(pkt.dst_addr) or ip_wire.is_multicast(pkt.dst_addr):
                self._echo_reply(ep, pkt, body)
            else:
                self._offer_to_forwarder(pkt)
        elif kind == wire.ECHO_REPLY:
            ep.dispatcher.deliver_transport_packet(IPProto.ICMPV6, pkt)
        elif kind in _NDP_TYPES:
            self.protocol.ndp.handle(ep, pkt, hdr, body)
        elif kind in self.handlers:
            self.handlers[kind](ep, pkt, body)
        elif hdr.is_error:
            self._error_received(ep, pkt, hdr, body)

    def _echo_reply(self, ep: IPv6Endpoint, pkt: PacketBuffer, body: memoryview) -> None:
        src = pkt.dst_addr if ep.nic.has_address(pkt.dst_addr) else None
        route = self._route(ep, src, pkt.src_addr)
        if route is None:
            return
        ident_seq = int.from_bytes(body[4:8], "big")
        message = wire.build(wire.ECHO_REPLY, 0, ident_seq, body[wire.HEADER_LEN:],
                             route.local_addr, route.remote_addr)
        route.write_packet(PacketBuffer(route.max_header_length, message), IPProto.ICMPV6)
        self.stack.stats.count("icmp6.echo_replied")

    def _error_received(self, ep: IPv6Endpoint, pkt: PacketBuffer, hdr: wire.ICMPv6Header,
                        body: memoryview) -> None:
        quoted = body[wire.HEADER_LEN:]
        if len(quoted) < ip_wire.HEADER_LEN:
            self.stack.stats.drop("icmp6", DropReason.TRUNCATED)
            return
        _vtf, _plen, nxt, _hl, inner_src, inner_dst = ip_wire.HEADER.unpack_from(quoted)
        try:
            ext = ip_wire.walk_extensions(quoted, nxt)
        except ParseError as err:
            self.stack.stats.drop("icmp6", err.reason)
            return
        protocol = ext.fragment.next_header if ext.fragment else ext.protocol
        offset = ext.offset + (ip_wire.FRAGMENT_LEN if ext.fragment else 0)
        if ext.fragment is not None and ext.fragment.offset:
            self.stack.stats.drop("icmp6", DropReason.TRUNCATED)
            return
        ports = bytes(quoted[offset:offset + 8])
        if len(ports) < 4:
            self.stack.stats.drop("icmp6", DropReason.TRUNCATED)
            return
        mtu = 0
        pmtu = self.protocol.pmtu
        staged = pmtu.entry(inner_dst)
        if hdr.type == wire.DEST_UNREACHABLE:
            kind = _UNREACHABLE_KINDS.get(hdr.code, ControlKind.HOST_UNREACHABLE)
        elif hdr.type == wire.PACKET_TOO_BIG:
            if hdr.rest < wire.MIN_MTU:
                # RFC 8201 4: a next-hop MTU below the IPv6 minimum link MTU is discarded
                self.stack.stats.drop("icmp6", DropReason.BAD_MESSAGE)
                self.stack.stats.count("icmp6.ptb_below_minimum")
                return
            kind = ControlKind.PACKET_TOO_BIG
            # Staged: the transport confirms the quoted packet is its own (RFC 8201 5.2,
            # RFC 5927 4.1) or the cache is put back as it was, below.
            mtu = pmtu.update(inner_dst, hdr.rest)
        elif hdr.type == wire.TIME_EXCEEDED:
            kind = ControlKind.TTL_EXCEEDED
        else:
            kind = ControlKind.PARAMETER_PROBLEM
        if protocol == IPProto.ICMPV6:
            local_port = remote_port = int.from_bytes(ports[4:6], "big")
        else:
            local_port = int.from_bytes(ports[0:2], "big")
            remote_port = int.from_bytes(ports[2:4], "big")
        msg = ControlMessage(kind, inner_src, inner_dst, local_port, remote_port, mtu, ports,
                             pkt.src_addr)
        self.stack.stats.count("icmp6.errors_received")
        accepted = ep.dispatcher.deliver_transport_control(protocol, msg, pkt)
        if kind is ControlKind.PACKET_TOO_BIG and not accepted:
            pmtu.restore(inner_dst, staged)
            self.stack.stats.count("icmp6.ptb_rejected")

    def _offer_to_forwarder(self, pkt: PacketBuffer) -> None:
        """An echo request for an address that is not ours (the guest-forwarding mode)."""
        proto = self.stack.transport_protocols.get(IPProto.ICMPV6)
        if proto is None:
            self.stack.stats.drop("icmp6", DropReason.NOT_FOR_US)
            return
        proto.handle_unknown_destination(pkt)

    # --- sending errors ------------------------------------------------------------------------

    def send_error(self, ep: IPv6Endpoint, pkt: PacketBuffer, kind: int, code: int,
                   rest: int = 0, allow_multicast: bool = False) -> None:
        """RFC 4443 2.4 (e): not about errors, multicast (mostly) or unspecified sources."""
        stats = self.stack.stats
        src, dst = pkt.src_addr, pkt.dst_addr
        multicast = ip_wire.is_multicast(dst) or pkt.link_multicast
        if (multicast and not allow_multicast and kind != wire.PACKET_TOO_BIG) or not any(src) \
                or ip_wire.is_multicast(src):
            stats.count("icmp6.error_suppressed")
            return
        original = pkt.frame()[pkt.network_offset:]  # up to the packet's end: no padding
        proto, offset = ip_wire.upper_layer(original, original[6])  # past extension headers
        if proto == IPProto.ICMPV6 and (offset < 0 or offset >= len(original)
                                        or original[offset] < 128):
            stats.count("icmp6.error_suppressed")  # RFC 4443 2.4 (e.1)
            return
        if not self.limiter.take(self.stack.clock.now()):
            stats.drop("icmp6", DropReason.RATE_LIMITED)
            return
        route = self._route(ep, dst if ep.nic.has_address(dst) else None, src)
        if route is None:
            return
        room = wire.MIN_MTU - ip_wire.HEADER_LEN - wire.HEADER_LEN
        quote = original[:room]
        message = wire.build(kind, code, rest, quote, route.local_addr, route.remote_addr)
        route.write_packet(PacketBuffer(route.max_header_length, message), IPProto.ICMPV6)
        stats.count(f"icmp6.tx_error_{kind}_{code}")

    def _reassembly_timeout(self, quoted: bytes) -> None:
        """RFC 8200 4.5: Time Exceeded code 1 when a datagram's first fragment came."""
        if len(quoted) < ip_wire.HEADER_LEN:
            return
        src, dst = quoted[8:24], quoted[24:40]
        nic = self.stack.local_nic(dst)
        if nic is None:
            return
        try:
            ext = ip_wire.walk_extensions(quoted, quoted[6])
        except ParseError:
            return
        upper = ext.offset + ip_wire.FRAGMENT_LEN
        if ext.fragment is not None and ext.fragment.next_header == IPProto.ICMPV6 and (
                upper >= len(quoted) or quoted[upper] < 128):  # RFC 4443 2.4 (e.1)
            self.stack.stats.count("icmp6.error_suppressed")
            return
        if not self.limiter.take(self.stack.clock.now()):
            return
        ep = nic.endpoints[self.protocol.number]
        route = self._route(ep, dst, src)  # type: ignore[arg-type]
        if route is not None:
            message = wire.build(wire.TIME_EXCEEDED, 1, 0, quoted, route.local_addr,
                                 route.remote_addr)
            route.write_packet(PacketBuffer(route.max_header_length, message), IPProto.ICMPV6)

    def _route(self, ep: IPv6Endpoint, src: bytes | None, dst: bytes) -> Route | None:
        try:
            return self.stack.find_route(dst, src, ep.nic.id)
        except OSError:
            self.stack.stats.drop("icmp6", DropReason.NO_ROUTE)
            return None
