# SPDX-License-Identifier: MIT
"""A DHCPv4 server for the one guest on a link (RFC 2131 section 4.3).

Every client is offered ``guest4`` with the gateway as router and DNS server (or
``dns_forward4``), as passt and slirp do: there is one guest per link, so there is
nothing to share.
Replies go where RFC 2131 4.1 says: to ``ciaddr`` when the client has an
address, broadcast when it asks for it (and always for a DHCPNAK), otherwise
unicast to ``yiaddr`` at the client's hardware address, without ARP (the client
cannot answer ARP before it is configured).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.route import Route
from ustack.transport.udp import UDPEndpoint
from ustack.wire import dhcp as wire
from ustack.wire import ethernet
from ustack.wire import ipv4 as ip_wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import EtherType

if TYPE_CHECKING:
    from ustack.forward.config import GuestNetwork
    from ustack.nic import NIC
    from ustack.stack import Stack

_NAMES = {wire.DISCOVER: "discover", wire.REQUEST: "request", wire.DECLINE: "decline",
          wire.RELEASE: "release", wire.INFORM: "inform", wire.OFFER: "offer", wire.ACK: "ack",
          wire.NAK: "nak"}


@dataclass
class Lease:
    """Who holds ``guest4`` and until when (stack clock)."""

    client: bytes  # the client identifier, or the hardware address (RFC 2131 4.2)
    chaddr: bytes
    expires: float


class DHCPServer:
    def __init__(self, stack: Stack, nic: NIC, net: GuestNetwork) -> None:
        self.stack = stack
        self.nic = nic
        self.net = net
        self.server_id = ipaddress.IPv4Address(net.gateway4).packed
        self.address = ipaddress.IPv4Address(net.guest4).packed
        self.dns_server = ipaddress.IPv4Address(net.dns_forward4).packed
        network = ipaddress.IPv4Network(net.network4)
        self.netmask = network.netmask.packed
        self.broadcast_address = network.broadcast_address.packed
        if not 0 < net.lease_time <= 0xFFFFFFFF:
            raise ValueError(f"lease time {net.lease_time} out of range")
        # checked here, so a bad configuration fails at once, not in a reply
        self.domain = net.domain.encode("ascii") if net.domain else None
        self.lease: Lease | None = None
        self._endpoints: list[UDPEndpoint] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on 0.0.0.0:67 (broadcasts) and on the gateway's :67 (renewals)."""
        if self._endpoints:
            return
        try:
            for local in (bytes(4), self.server_id):
                ep = UDPEndpoint(self.stack, 4)
                ep.reuse = True  # several guest links on one stack each run a server
                ep.broadcast = True  # SO_BROADCAST
                ep.on_packet = self._received
                self._endpoints.append(ep)
                ep.bind(local, wire.SERVER_PORT)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for ep in self._endpoints:
            ep.close()
        self._endpoints.clear()

    # --- receiving -------------------------------------------------------------------------

    def _received(self, data: bytes, _sport: int, pkt: PacketBuffer) -> None:
        if pkt.nic is not self.nic:
            return  # another guest link's server answers it
        stats = self.stack.stats
        try:
            msg = wire.parse(data)
        except ParseError as err:
            stats.drop("dhcp", err.reason)
            return
        kind = msg.options.message_type
        if msg.op != wire.BOOTREQUEST or kind is None:
            stats.drop("dhcp", DropReason.BAD_MESSAGE)  # a reply, or plain BOOTP
            return
        if msg.htype != wire.HTYPE_ETHERNET or len(msg.chaddr) != 6:
            stats.drop("dhcp", DropReason.BAD_MESSAGE)
            return
        if any(msg.giaddr):  # relay agents are not expected on a guest link
            stats.drop("dhcp", DropReason.NOT_FOR_US)
            return
        stats.count(f"dhcp.rx_{_NAMES.get(kind, 'unknown')}")
        if kind == wire.DISCOVER:
            self._send(msg, wire.OFFER, self.address)
        elif kind == wire.REQUEST:
            self._request(msg)
        elif kind == wire.INFORM:
            self._send(msg, wire.ACK, bytes(4), lease=False)
        elif kind in (wire.RELEASE, wire.DECLINE):
            # 4.3.4 / 4.3.5: no answer; a declined address is in use by someone else,
            # but it is the only one we have, so it is merely forgotten
            if self.lease is not None and self.lease.client == self._client(msg):
                self.lease = None
        else:
            stats.drop("dhcp", DropReason.BAD_MESSAGE)

    def _request(self, msg: wire.Message) -> None:
        """4.3.2: tell SELECTING, INIT-REBOOT and RENEWING/REBINDING apart by their fields."""
        opts = msg.options
        if opts.server_id is not None:  # SELECTING: the client picked a server
            if opts.server_id != self.server_id:
                self.stack.stats.count("dhcp.other_server_selected")
                return
            if opts.requested_address is None:
                self.stack.stats.drop("dhcp", DropReason.BAD_MESSAGE)
                return
            wanted = opts.requested_address
        elif opts.requested_address is not None:  # INIT-REBOOT
            wanted = opts.requested_address
        elif any(msg.ciaddr):  # RENEWING or REBINDING
            wanted = msg.ciaddr
        else:
            self.stack.stats.drop("dhcp", DropReason.BAD_MESSAGE)
            return
        if wanted != self.address:
            self._send(msg, wire.NAK, bytes(4))
            return
        client = self._client(msg)
        now = self.stack.clock.now()
        if self.lease is not None and self.lease.client != client and self.lease.expires > now:
            self.stack.stats.count("dhcp.lease_taken_over")
        self.lease = Lease(client, msg.chaddr, now + self.net.lease_time)
        self._send(msg, wire.ACK, self.address)

    @staticmethod
    def _client(msg: wire.Message) -> bytes:
        return msg.options.client_id or msg.chaddr

    # --- replying --------------------------------------------------------------------------

    def _options(self, request: wire.Message, kind: int, lease: bool) -> wire.Options:
        """RFC 2131 table 3; the client identifier is echoed (RFC 6842)."""
        if kind == wire.NAK:
            return wire.Options(message_type=kind, server_id=self.server_id,
                                client_id=request.options.client_id,
                                message=b"requested address is not available")
        time = self.net.lease_time
        return wire.Options(
            message_type=kind, server_id=self.server_id,
            lease_time=time if lease else None,
            renewal_time=time // 2 if lease else None,  # RFC 2131 4.4.5 defaults
            rebinding_time=time * 7 // 8 if lease else None,
            subnet_mask=self.netmask, routers=(self.server_id,),
            dns_servers=(self.dns_server,),
            domain_name=self.domain,
            mtu=min(self.net.mtu, self.nic.link.mtu, 0xFFFF),
            client_id=request.options.client_id,
            other=((wire.OPT_BROADCAST_ADDRESS, self.broadcast_address),),
        )

    def _send(self, request: wire.Message, kind: int, yiaddr: bytes, lease: bool = True) -> None:
        reply = wire.Message(
            wire.BOOTREPLY, request.xid, request.chaddr, self._options(request, kind, lease),
            flags=request.flags,
            ciaddr=request.ciaddr if kind == wire.ACK else bytes(4),
            yiaddr=yiaddr, giaddr=request.giaddr)
        data = wire.build(reply, order=request.options.parameter_request_list)
        route = self._route(request, kind, yiaddr)
        if route is None:
            self.stack.stats.drop("dhcp", DropReason.NO_ROUTE)
            return
        self._endpoints[0].send_datagram(route, data, wire.CLIENT_PORT)
        self.stack.stats.count(f"dhcp.tx_{_NAMES[kind]}")

    def _route(self, request: wire.Message, kind: int, yiaddr: bytes) -> Route | None:
        """RFC 2131 4.1, for a zero giaddr."""
        ep = self.nic.endpoints[EtherType.IPV4]
        if kind != wire.NAK and any(request.ciaddr):
            try:
                return self.stack.find_route(request.ciaddr, self.server_id, self.nic.id)
            except OSError:
                return None
        if kind == wire.NAK or request.broadcast or not any(yiaddr):
            return Route(self.nic, ep, EtherType.IPV4, self.server_id, ip_wire.BROADCAST,
                         ip_wire.BROADCAST, link_addr=ethernet.BROADCAST)
        return Route(self.nic, ep, EtherType.IPV4, self.server_id, yiaddr, yiaddr,
                     link_addr=request.chaddr)
