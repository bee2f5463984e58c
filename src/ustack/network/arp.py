# SPDX-License-Identifier: MIT
"""ARP (RFC 826): resolves IPv4 next hops; answers for our addresses; announces them (RFC 5227)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.contracts import TransportDispatcher
from ustack.wire import arp as wire
from ustack.wire import ethernet
from ustack.wire import ipv4 as ip_wire
from ustack.wire.errors import ParseError
from ustack.wire.proto import EtherType

if TYPE_CHECKING:
    from ustack.nic import NIC, InterfaceAddress
    from ustack.stack import Stack


class ARPProtocol:
    number = EtherType.ARP
    name = "arp"
    resolves = EtherType.IPV4

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def new_endpoint(self, nic: NIC, dispatcher: TransportDispatcher) -> ARPEndpoint:
        return ARPEndpoint(self, nic)

    # --- LinkAddressResolver ---------------------------------------------------------------

    def link_address_request(self, nic: NIC, target: bytes, local: bytes | None,
                             remote_link: bytes | None) -> None:
        sender = local if local and nic.has_address(local) else nic.primary_address(4, target)
        if sender is None:
            return
        self._send(nic, wire.OP_REQUEST, sender, ethernet.ZERO, target,
                   remote_link or ethernet.BROADCAST)
        self.stack.stats.count("arp.tx_request")

    def static_link_address(self, addr: bytes) -> bytes | None:
        if addr == ip_wire.BROADCAST:
            return ethernet.BROADCAST
        if ip_wire.is_multicast(addr):
            return ethernet.ipv4_multicast_mac(addr)
        return None

    def address_added(self, nic: NIC, entry: InterfaceAddress) -> None:
        """RFC 5227 2.3: announce a new address with a gratuitous request."""
        if len(entry.addr) == 4 and nic.needs_resolution and self.stack.options.announce:
            self._send(nic, wire.OP_REQUEST, entry.addr, ethernet.ZERO, entry.addr,
                       ethernet.BROADCAST)
            self.stack.stats.count("arp.tx_announce")

    def _send(self, nic: NIC, op: int, sender_ip: bytes, target_mac: bytes, target_ip: bytes,
              dst_link: bytes) -> None:
        packet = wire.build(wire.ARPPacket(op, nic.link.link_address, sender_ip, target_mac,
                                           target_ip))
        pkt = PacketBuffer(nic.link.max_header_length, packet)
        pkt.network_protocol = EtherType.ARP
        nic.send_resolved(pkt, dst_link)


def factory(stack: Stack) -> ARPProtocol:
    return ARPProtocol(stack)


class ARPEndpoint:
    def __init__(self, protocol: ARPProtocol, nic: NIC) -> None:
        self.protocol = protocol
        self.nic = nic

    @property
    def mtu(self) -> int:
        return self.nic.link.mtu

    @property
    def max_header_length(self) -> int:
        return self.nic.link.max_header_length

    def write_packet(self, *args: object) -> None:
        raise NotImplementedError("ARP carries no transport packets")

    def close(self) -> None:
        pass

    def handle_packet(self, pkt: PacketBuffer) -> None:
        stats = self.protocol.stack.stats
        stats.count("arp.rx")
        try:
            msg = wire.parse(pkt.body())
        except ParseError as err:
            stats.drop("arp", err.reason)
            return
        nic = self.nic
        cache = nic.neighbors.get(EtherType.IPV4)
        if cache is None or msg.sender_mac[0] & 1:
            stats.count("arp.ignored")
            return
        if not any(msg.sender_ip):
            # An ARP probe (RFC 5227 2.1.1): answer for our address so the prober sees it
            # in use, as Linux does; a probe teaches us nothing about the sender.
            if msg.op == wire.OP_REQUEST and nic.has_address(msg.target_ip):
                self.protocol._send(nic, wire.OP_REPLY, msg.target_ip, msg.sender_mac,
                                    msg.sender_ip, msg.sender_mac)
                stats.count("arp.tx_probe_reply")
            else:
                stats.count("arp.ignored")
            return
        if nic.has_address(msg.sender_ip):
            stats.count("arp.address_conflict")
            return
        for_us = nic.has_address(msg.target_ip)
        # RFC 826 "merge": refresh a known sender; learn it if the request was for us.
        cache.update(msg.sender_ip, msg.sender_mac, confirmed=for_us, create=for_us)
        if msg.op == wire.OP_REQUEST and for_us:
            self.protocol._send(nic, wire.OP_REPLY, msg.target_ip, msg.sender_mac,
                                msg.sender_ip, msg.sender_mac)
            stats.count("arp.tx_reply")
