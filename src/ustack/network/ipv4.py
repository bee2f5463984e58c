# SPDX-License-Identifier: MIT
"""IPv4 (RFC 791, host requirements RFC 1122 3.2.1): validation, TTL, fragmentation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer, finish_partial_checksum
from ustack.contracts import DeliveryResult, LinkCapabilities, TransportDispatcher
from ustack.network import local
from ustack.network.fragment import Reassembler
from ustack.network.icmp4 import ICMPv4Handler
from ustack.network.pmtu import PathMTUCache
from ustack.wire import checksum
from ustack.wire import icmp4 as icmp_wire
from ustack.wire import ipv4 as wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import EtherType, IPProto

if TYPE_CHECKING:
    from ustack.nic import NIC
    from ustack.route import Route
    from ustack.stack import Stack

MIN_PMTU = 552  # Linux's min_pmtu: below this, fragment rather than trust the ICMP
# enum members read on every packet, looked up once (a member lookup costs ~90 ns on 3.11)
_ICMP = IPProto.ICMP
_TCP = IPProto.TCP
_IPV4 = EtherType.IPV4


class IPv4Protocol:
    number = EtherType.IPV4
    name = "ipv4"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        opts = stack.options
        self.reassembler: Reassembler[tuple[bytes, bytes, int, int]] = Reassembler(
            stack.clock, stack.stats, "ipv4", opts.reassembly_timeout, opts.reassembly_memory)
        self.pmtu = PathMTUCache(stack.clock, MIN_PMTU)
        self._ident = stack.random.randrange(65536)
        self.icmp = ICMPv4Handler(stack, self)

    def new_endpoint(self, nic: NIC, dispatcher: TransportDispatcher) -> IPv4Endpoint:
        return IPv4Endpoint(self, nic, dispatcher)

    def next_ident(self) -> int:
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident


def reassembled_header(first: bytes, payload_length: int) -> bytes:
    """The first fragment's header describing the whole datagram, as Linux's
    ip_frag_reasm leaves it (so an ICMP error about it quotes the datagram, RFC 792):
    total length of the whole, no MF flag or offset, the checksum recomputed."""
    header = bytearray(first)
    header[2:4] = min(len(header) + payload_length, 0xFFFF).to_bytes(2, "big")
    header[6:8] = (int.from_bytes(header[6:8], "big") & wire.FLAG_DF).to_bytes(2, "big")
    header[10:12] = b"\0\0"
    header[10:12] = checksum.checksum(header).to_bytes(2, "big")
    return bytes(header)


def factory(stack: Stack) -> IPv4Protocol:
    return IPv4Protocol(stack)


class IPv4Endpoint:
    def __init__(self, protocol: IPv4Protocol, nic: NIC, dispatcher: TransportDispatcher) -> None:
        self.protocol = protocol
        self.nic = nic
        self.dispatcher = dispatcher
        self.stats = protocol.stack.stats
        self._clock = protocol.stack.clock
        #: loopback sources are martians except on a loopback link (RFC 1122 3.2.1.3 (g))
        self._reject_loopback = not nic.link.capabilities & LinkCapabilities.LOOPBACK

    @property
    def mtu(self) -> int:
        return self.nic.link.mtu - wire.MIN_HEADER_LEN

    @property
    def max_header_length(self) -> int:
        return self.nic.link.max_header_length + wire.MIN_HEADER_LEN

    def path_mtu(self, dst: bytes) -> int:
        """Largest IP packet to ``dst`` without fragmentation (link MTU or learned PMTU)."""
        return self.protocol.pmtu.get(dst, self.nic.link.mtu)

    def close(self) -> None:
        pass

    # --- receive ------------------------------------------------------------------------

    def handle_packet(self, pkt: PacketBuffer) -> None:
        counters = self.stats.counters
        counters["ipv4.rx"] += 1
        try:
            hdr = wire.parse(pkt.body())
        except ParseError as err:
            self.stats.drop("ipv4", err.reason)
            return
        src, dst = hdr.src, hdr.dst
        # RFC 1122 3.2.1.3: a source that is not a unique host is silently discarded.
        if src == wire.BROADCAST or wire.is_multicast(src) or self.nic.is_broadcast(src) or (
                src[0] == 127 and self._reject_loopback):
            self.stats.drop("ipv4", DropReason.BAD_ADDRESS)
            return
        if not self.nic.accepts(dst):
            self.stats.drop("ipv4", DropReason.NOT_FOR_US)
            return
        pkt.trim(hdr.total_length)
        pkt.network_offset = pkt.offset
        pkt.src_addr = src
        pkt.dst_addr = dst
        pkt.ttl = hdr.ttl
        pkt.tos = hdr.tos
        pkt.network_protocol = _IPV4
        pkt.transport_protocol = hdr.protocol
        if hdr.is_fragment:
            whole = self._reassemble(pkt, hdr)
            if whole is None:
                return
            pkt = whole
        else:
            pkt.pull(hdr.header_length)
        pkt.transport_offset = pkt.offset
        self.deliver(hdr.protocol, pkt)

    def _reassemble(self, pkt: PacketBuffer, hdr: wire.IPv4Header) -> PacketBuffer | None:
        body = pkt.body()
        done = self.protocol.reassembler.add(
            (hdr.src, hdr.dst, hdr.protocol, hdr.ident), hdr.fragment_offset,
            hdr.more_fragments, body[hdr.header_length:], body[:hdr.header_length])
        if done is None:
            return None
        first_header, payload = done
        header = reassembled_header(first_header, len(payload))
        whole = PacketBuffer(0, header + payload)
        for name in ("nic", "src_link", "dst_link", "src_addr", "dst_addr", "ttl", "tos",
                     "network_protocol", "transport_protocol", "checksum_verified"):
            setattr(whole, name, getattr(pkt, name))
        whole.checksum_verified = False  # offloads vouch for single frames only
        whole.pull(len(header))
        return whole

    def deliver(self, protocol: int, pkt: PacketBuffer) -> None:
        if protocol == _ICMP:
            self.protocol.icmp.handle(self, pkt)
            return
        result = self.dispatcher.deliver_transport_packet(protocol, pkt)
        if result is DeliveryResult.PORT_UNREACHABLE:
            self.protocol.icmp.send_error(self, pkt, icmp_wire.DEST_UNREACHABLE,
                                          icmp_wire.PORT_UNREACHABLE)
        elif result is DeliveryResult.UNKNOWN_PROTOCOL:
            self.stats.drop("ipv4", DropReason.UNKNOWN_PROTOCOL)
            self.protocol.icmp.send_error(self, pkt, icmp_wire.DEST_UNREACHABLE,
                                          icmp_wire.PROTOCOL_UNREACHABLE)

    # --- send ---------------------------------------------------------------------------

    def write_packet(self, route: Route, pkt: PacketBuffer, protocol: int, ttl: int,
                     tos: int) -> None:
        """Add the IPv4 header (fragmenting if needed) and pass the packet to the NIC."""
        ttl = ttl or self.protocol.stack.options.default_ttl
        total = len(pkt) + wire.MIN_HEADER_LEN
        mtu = self.path_mtu(route.remote_addr)  # RFC 1191: what the path takes, not the link
        dont_fragment = protocol == _TCP  # RFC 1191 path MTU discovery for TCP
        if total > mtu and not pkt.gso_size and not route.is_local:
            self._fragment(route, pkt, protocol, ttl, tos, mtu)
            return
        if total > wire.MAX_PACKET and not pkt.gso_size:
            self.stats.drop("ipv4", DropReason.TOO_BIG)
            return
        ident = 0 if dont_fragment else self.protocol.next_ident()
        wire.build_unfragmented(pkt.prepend(wire.MIN_HEADER_LEN), min(total, 0xFFFF), protocol,
                                route.local_addr, route.remote_addr, ttl, tos, ident,
                                dont_fragment)
        self.stats.counters["ipv4.tx"] += 1
        if route.is_local:
            self._loop_back(pkt)
        else:
            self.nic.write_packet(route, pkt)

    def _fragment(self, route: Route, pkt: PacketBuffer, protocol: int, ttl: int, tos: int,
                  mtu: int) -> None:
        """RFC 791 3.2: split the payload into 8-byte aligned pieces that fit the MTU."""
        data = finish_partial_checksum(pkt)
        chunk = (mtu - wire.MIN_HEADER_LEN) & ~7
        ident = self.protocol.next_ident()
        headroom = self.max_header_length
        view = memoryview(data)
        for offset in range(0, len(data), chunk):
            piece = view[offset:offset + chunk]
            more = offset + chunk < len(data)
            frag = PacketBuffer(headroom, piece)
            wire.build_into(frag.prepend(wire.MIN_HEADER_LEN), 0,
                            total_length=wire.MIN_HEADER_LEN + len(piece), protocol=protocol,
                            src=route.local_addr, dst=route.remote_addr, ttl=ttl, tos=tos,
                            ident=ident, more_fragments=more, fragment_offset=offset)
            self.stats.counters["ipv4.tx_fragments"] += 1
            self.nic.write_packet(route, frag)
        self.stats.counters["ipv4.tx"] += 1

    def handle_link_resolution_failure(self, pkt: PacketBuffer) -> None:
        """ARP gave up on the next hop: tell the sender's endpoint, as a local ICMP would."""
        data = pkt.to_bytes()
        try:
            hdr = wire.parse(data, verify_checksum=False, quoted=True)
        except ParseError:
            return
        msg = local.unreachable(hdr.src, hdr.dst, hdr.protocol, data[hdr.header_length:])
        if msg is not None:
            self.dispatcher.deliver_transport_control(hdr.protocol, msg, pkt)

    def _loop_back(self, pkt: PacketBuffer) -> None:
        local.loop_back(self._clock, self.nic, self.handle_packet, pkt)
