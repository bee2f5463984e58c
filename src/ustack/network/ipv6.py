# SPDX-License-Identifier: MIT
"""IPv6 (RFC 8200): extension headers, fragmentation and reassembly, hop limit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer, finish_partial_checksum
from ustack.contracts import DeliveryResult, LinkCapabilities, TransportDispatcher
from ustack.network import local
from ustack.network.fragment import Reassembler
from ustack.network.icmp6 import ICMPv6Handler
from ustack.network.ndp import NDP
from ustack.network.pmtu import PathMTUCache
from ustack.wire import icmp6 as icmp_wire
from ustack.wire import ipv6 as wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import EtherType, IPProto

if TYPE_CHECKING:
    from ustack.nic import NIC, InterfaceAddress
    from ustack.route import Route
    from ustack.stack import Stack


class IPv6Protocol:
    number = EtherType.IPV6
    name = "ipv6"
    resolves = EtherType.IPV6  # NDP is part of IPv6

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        opts = stack.options
        self.reassembler: Reassembler[tuple[bytes, bytes, int]] = Reassembler(
            stack.clock, stack.stats, "ipv6", opts.reassembly_timeout6, opts.reassembly_memory)
        self.pmtu = PathMTUCache(stack.clock, icmp_wire.MIN_MTU)
        self._ident = stack.random.getrandbits(32)
        self.icmp = ICMPv6Handler(stack, self)
        self.ndp = NDP(stack, self)

    def new_endpoint(self, nic: NIC, dispatcher: TransportDispatcher) -> IPv6Endpoint:
        return IPv6Endpoint(self, nic, dispatcher)

    def next_ident(self) -> int:
        self._ident = (self._ident + 0x9E3779B1) & 0xFFFFFFFF  # hard to predict (RFC 7739)
        return self._ident

    # --- hooks called by the stack, and LinkAddressResolver -----------------------------------

    def nic_enabled(self, nic: NIC) -> None:
        self.ndp.nic_enabled(nic)

    def address_added(self, nic: NIC, entry: InterfaceAddress) -> None:
        self.ndp.address_added(nic, entry)  # duplicate address detection (RFC 4862 5.4)

    def assume_unique(self, nic: NIC, entry: InterfaceAddress) -> None:
        """Assign a tentative address at once (``Stack.add_address(dad=False)``)."""
        self.ndp.dad.assume_unique(entry.addr)

    def address_removed(self, nic: NIC, addr: bytes) -> None:
        if len(addr) == 16:
            self.ndp.address_removed(nic, addr)  # a tentative address's DAD stops

    def disable_nic(self, nic: NIC) -> bool:
        """Stop IPv6 on ``nic``: nothing sent, nothing received (RFC 4862 5.4.5, Linux's
        disable_ipv6); False if it was off already."""
        ep = nic.endpoints.get(EtherType.IPV6)
        if not isinstance(ep, IPv6Endpoint) or ep.disabled:
            return False
        ep.disabled = True  # receiving
        nic.disabled_protocols.add(EtherType.IPV6)  # sending, whoever sends (NDP, MLD too)
        return True

    def link_address_request(self, nic: NIC, target: bytes, local: bytes | None,
                             remote_link: bytes | None) -> None:
        self.ndp.send_neighbor_solicitation(nic, target, local, remote_link)

    def static_link_address(self, addr: bytes) -> bytes | None:
        from ustack.wire import ethernet

        return ethernet.ipv6_multicast_mac(addr) if wire.is_multicast(addr) else None


def factory(stack: Stack) -> IPv6Protocol:
    return IPv6Protocol(stack)


class IPv6Endpoint:
    def __init__(self, protocol: IPv6Protocol, nic: NIC, dispatcher: TransportDispatcher) -> None:
        self.protocol = protocol
        self.nic = nic
        self.dispatcher = dispatcher
        self.stats = protocol.stack.stats
        self._clock = protocol.stack.clock
        #: ::1 as a source is a martian except on a loopback link (RFC 4291 2.5.3)
        self._reject_loopback = not nic.link.capabilities & LinkCapabilities.LOOPBACK
        #: the MTU option of a router advertisement (RFC 4861 6.3.4), 0 when none
        self.ra_mtu = 0
        #: a router advertisement's Cur Hop Limit (RFC 4861 6.3.4), 0 when none
        self.ra_hop_limit = 0
        #: IPv6 off on this NIC (a duplicate hardware-derived link-local address, RFC 4862
        #: 5.4.5): every packet in is dropped and counted (and out: NIC.disabled_protocols)
        self.disabled = False

    @property
    def link_mtu(self) -> int:
        return min(self.ra_mtu or self.nic.link.mtu, self.nic.link.mtu)

    @property
    def mtu(self) -> int:
        return self.link_mtu - wire.HEADER_LEN

    @property
    def max_header_length(self) -> int:
        return self.nic.link.max_header_length + wire.HEADER_LEN

    def path_mtu(self, dst: bytes) -> int:
        return self.protocol.pmtu.get(dst, self.link_mtu)

    def close(self) -> None:
        pass

    # --- receive ------------------------------------------------------------------------

    def handle_packet(self, pkt: PacketBuffer) -> None:
        self.stats.counters["ipv6.rx"] += 1
        if self.disabled:
            self.stats.drop("ipv6", DropReason.LINK_DOWN)
            return
        try:
            hdr = wire.parse(pkt.body())
        except ParseError as err:
            self.stats.drop("ipv6", err.reason)
            return
        if wire.is_multicast(hdr.src) or (hdr.src == wire.LOOPBACK and self._reject_loopback):
            # RFC 4291 2.7: never a multicast source; 2.5.3: ::1 never arrives from a wire
            self.stats.drop("ipv6", DropReason.BAD_ADDRESS)
            return
        if not self.nic.accepts(hdr.dst):
            self.stats.drop("ipv6", DropReason.NOT_FOR_US)
            return
        pkt.trim(wire.HEADER_LEN + hdr.payload_length)
        pkt.network_offset = pkt.offset
        pkt.src_addr = hdr.src
        pkt.dst_addr = hdr.dst
        pkt.ttl = hdr.hop_limit
        pkt.tos = hdr.traffic_class
        pkt.network_protocol = EtherType.IPV6
        body = pkt.body()
        try:
            ext = wire.walk_extensions(body, hdr.next_header,
                                       multicast_dst=wire.is_multicast(hdr.dst))
        except ParseError as err:
            self.stats.drop("ipv6", err.reason)
            return
        if ext.problem is not None:
            self._parameter_problem(pkt, ext.problem.code, ext.problem.pointer, ext.problem.send)
            return
        if ext.fragment is not None:
            frag = ext.fragment
            if frag.offset == 0 and not frag.more:  # an atomic fragment (RFC 6946)
                pkt.pull(frag.header_offset + wire.FRAGMENT_LEN)
                self._deliver_after_fragment(pkt, frag.next_header,
                                             frag.header_offset + wire.FRAGMENT_LEN,
                                             frag.header_offset)
                return
            size = len(body) - frag.header_offset - wire.FRAGMENT_LEN
            if (frag.more and size % 8) or (
                    frag.header_offset - wire.HEADER_LEN + frag.offset + size > 0xFFFF):
                # RFC 8200 4.5: point at the Payload Length or the Fragment Offset field
                self.stats.drop("ipv6", DropReason.BAD_FRAGMENT)
                pointer = 4 if frag.more and size % 8 else frag.header_offset + 2
                self.protocol.icmp.send_error(self, pkt, icmp_wire.PARAMETER_PROBLEM,
                                              wire.PP_ERRONEOUS_FIELD, pointer)
                return
            whole = self._reassemble(pkt, body, frag)
            if whole is not None:
                self._deliver_after_fragment(*whole)
            return
        pkt.pull(ext.offset)
        self.deliver(ext.protocol, pkt, ext.pointer)

    def _reassemble(self, pkt: PacketBuffer, body: memoryview,
                    frag: wire.FragmentInfo) -> tuple[PacketBuffer, int, int, int] | None:
        """Once complete: (the whole packet, its upper-layer protocol, its header length,
        the offset of the Next Header field that names that protocol)."""
        start = frag.header_offset + wire.FRAGMENT_LEN
        done = self.protocol.reassembler.add(
            (pkt.src_addr, pkt.dst_addr, frag.ident), frag.offset, frag.more, body[start:],
            body[:start])  # Fragment header included: a timeout's ICMP quotes it as it came
        if done is None:
            return None
        first, payload = done
        # RFC 8200 4.5: the first fragment's unfragmentable part, with the field that named
        # the Fragment header now naming what followed it, and the whole's payload length
        next_header = first[-wire.FRAGMENT_LEN]
        header = bytearray(first[:-wire.FRAGMENT_LEN])
        naming = wire.walk_extensions(first, first[6]).pointer
        header[naming] = next_header
        header[4:6] = min(len(header) - wire.HEADER_LEN + len(payload), 0xFFFF).to_bytes(2, "big")
        whole = PacketBuffer(0, bytes(header) + payload)
        for name in ("nic", "src_link", "dst_link", "src_addr", "dst_addr", "ttl", "tos",
                     "network_protocol", "link_multicast"):
            setattr(whole, name, getattr(pkt, name))
        whole.pull(len(header))
        return whole, next_header, len(header), naming

    def _deliver_after_fragment(self, pkt: PacketBuffer, next_header: int, base: int,
                                naming: int) -> None:
        """``base``: the unfragmentable part's length; ``naming``: where in it the Next
        Header field names ``next_header`` (RFC 4443 3.4 points a Parameter Problem there
        when no extension header follows)."""
        body = pkt.body()
        try:
            ext = wire.walk_extensions(body, next_header, start=0, first=False,
                                       multicast_dst=wire.is_multicast(pkt.dst_addr))
        except ParseError as err:
            self.stats.drop("ipv6", err.reason)
            return
        if ext.problem is not None or ext.fragment is not None:
            self.stats.drop("ipv6", DropReason.BAD_EXTENSION_HEADER)
            return
        pkt.pull(ext.offset)
        walked = ext.offset > 0  # ext.pointer is then the last header's offset in the payload
        self.deliver(ext.protocol, pkt, base + ext.pointer if walked else naming)

    def deliver(self, protocol: int, pkt: PacketBuffer, pointer: int) -> None:
        pkt.transport_protocol = protocol
        pkt.transport_offset = pkt.offset
        if protocol == IPProto.ICMPV6:
            self.protocol.icmp.handle(self, pkt)
            return
        if protocol == IPProto.IPV6_NONXT:
            self.stats.count("ipv6.no_next_header")
            return
        result = self.dispatcher.deliver_transport_packet(protocol, pkt)
        if result is DeliveryResult.PORT_UNREACHABLE:
            self.protocol.icmp.send_error(self, pkt, icmp_wire.DEST_UNREACHABLE,
                                          icmp_wire.PORT_UNREACHABLE)
        elif result is DeliveryResult.UNKNOWN_PROTOCOL:
            self._parameter_problem(pkt, wire.PP_UNRECOGNIZED_NEXT_HEADER, pointer, True)

    def _parameter_problem(self, pkt: PacketBuffer, code: int, pointer: int, send: bool) -> None:
        """RFC 8200 4 / RFC 4443 3.4: drop, and answer with a Parameter Problem if asked."""
        self.stats.drop("ipv6", DropReason.UNKNOWN_PROTOCOL if code == 1
                        else DropReason.BAD_EXTENSION_HEADER)
        if send:
            self.protocol.icmp.send_error(self, pkt, icmp_wire.PARAMETER_PROBLEM, code, pointer,
                                          allow_multicast=code == wire.PP_UNRECOGNIZED_OPTION)

    # --- send ---------------------------------------------------------------------------

    def write_packet(self, route: Route, pkt: PacketBuffer, protocol: int, ttl: int,
                     tos: int) -> None:
        ttl = ttl or self.ra_hop_limit or self.protocol.stack.options.default_ttl
        payload_length = len(pkt)
        limit = self.protocol.pmtu.get(route.remote_addr, self.link_mtu)
        if payload_length + wire.HEADER_LEN > limit and not pkt.gso_size and not route.is_local:
            self._fragment(route, pkt, protocol, ttl, tos)
            return
        wire.build_into(pkt.prepend(wire.HEADER_LEN), 0, payload_length=min(payload_length, 0xFFFF),
                        next_header=protocol, src=route.local_addr, dst=route.remote_addr,
                        hop_limit=ttl, traffic_class=tos)
        self.stats.counters["ipv6.tx"] += 1
        if route.is_local:
            self._loop_back(pkt)
        else:
            self.nic.write_packet(route, pkt)

    def _fragment(self, route: Route, pkt: PacketBuffer, protocol: int, ttl: int,
                  tos: int) -> None:
        """RFC 8200 4.5: no extension headers of ours, so the unfragmentable part is the header."""
        data = memoryview(finish_partial_checksum(pkt))
        mtu = self.protocol.pmtu.get(route.remote_addr, self.link_mtu)
        chunk = (mtu - wire.HEADER_LEN - wire.FRAGMENT_LEN) & ~7
        ident = self.protocol.next_ident()
        for offset in range(0, len(data), chunk):
            piece = data[offset:offset + chunk]
            more = offset + chunk < len(data)
            frag = PacketBuffer(self.max_header_length + wire.FRAGMENT_LEN, piece)
            frag.prepend(wire.FRAGMENT_LEN)[:] = wire.build_fragment_header(
                protocol, offset, more, ident)
            wire.build_into(frag.prepend(wire.HEADER_LEN), 0,
                            payload_length=wire.FRAGMENT_LEN + len(piece),
                            next_header=IPProto.IPV6_FRAG, src=route.local_addr,
                            dst=route.remote_addr, hop_limit=ttl, traffic_class=tos)
            self.stats.counters["ipv6.tx_fragments"] += 1
            self.nic.write_packet(route, frag)
        self.stats.counters["ipv6.tx"] += 1

    def handle_link_resolution_failure(self, pkt: PacketBuffer) -> None:
        """NDP gave up on the next hop: tell the sender's endpoint, as a local ICMPv6 would."""
        data = pkt.to_bytes()
        try:
            hdr = wire.parse(data)
        except ParseError:
            return
        protocol, offset = wire.upper_layer(data, hdr.next_header)
        if offset < 0:
            return
        msg = local.unreachable(hdr.src, hdr.dst, protocol, data[offset:])
        if msg is not None:
            self.dispatcher.deliver_transport_control(protocol, msg, pkt)

    def _loop_back(self, pkt: PacketBuffer) -> None:
        local.loop_back(self._clock, self.nic, self.handle_packet, pkt)
