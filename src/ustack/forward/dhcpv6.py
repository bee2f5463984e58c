# SPDX-License-Identifier: MIT
"""A DHCPv6 server for the one guest on a link (RFC 8415 sections 16 and 18.3).

It listens on UDP 547 for All_DHCP_Relay_Agents_and_Servers (ff02::1:2), hands
``guest6`` to the first IA_NA of any client, and gives the gateway as DNS server
(RFC 3646) with the domain list. Replies go from the gateway's link-local address
to the client's source address, port 546, at the link address the request came
from. Its DUID is a DUID-LL made of the NIC's MAC, stable across restarts.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.route import Route
from ustack.transport.udp import UDPEndpoint
from ustack.wire import dhcpv6 as wire
from ustack.wire import dns
from ustack.wire import ipv6 as ip_wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import EtherType

if TYPE_CHECKING:
    from ustack.forward.config import GuestNetwork
    from ustack.nic import NIC
    from ustack.stack import Stack

_NAMES = {wire.SOLICIT: "solicit", wire.REQUEST: "request", wire.CONFIRM: "confirm",
          wire.RENEW: "renew", wire.REBIND: "rebind", wire.RELEASE: "release",
          wire.DECLINE: "decline", wire.INFORMATION_REQUEST: "information_request",
          wire.ADVERTISE: "advertise", wire.REPLY: "reply"}
#: RFC 8415 16: which messages must carry our Server Identifier (True), must not (False),
#: or may (None)
_SERVER_ID = {wire.SOLICIT: False, wire.REQUEST: True, wire.CONFIRM: False,
              wire.RENEW: True, wire.REBIND: False, wire.RELEASE: True, wire.DECLINE: True,
              wire.INFORMATION_REQUEST: None}
PREFERENCE = 255  # RFC 8415 18.2.1: the client requests at once, without waiting for others


class DHCPv6Server:
    def __init__(self, stack: Stack, nic: NIC, net: GuestNetwork) -> None:
        self.stack = stack
        self.nic = nic
        self.duid = wire.duid_ll(nic.link.link_address)
        self.address = ipaddress.IPv6Address(net.guest6).packed
        self.network = ipaddress.IPv6Network(net.network6)
        self.link_local = ipaddress.IPv6Address(net.gateway6_link_local).packed
        self.gateway = ipaddress.IPv6Address(net.gateway6).packed
        self.dns_server = ipaddress.IPv6Address(net.dns_forward6).packed
        self.domains = (net.domain,) if net.domain else ()
        for name in self.domains:
            dns.encode_name(name)  # a bad name fails here, not in a reply (ValueError)
        if not 0 < net.lease_time <= 0xFFFFFFFF:
            raise ValueError(f"lease time {net.lease_time} out of range")
        self.lifetime = net.lease_time
        self._ep: UDPEndpoint | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._ep is not None:
            return
        ep = UDPEndpoint(self.stack, 16)
        ep.reuse = True  # several guest links on one stack each run a server
        ep.on_packet = self._received
        ep.bind(bytes(16), wire.SERVER_PORT)
        self._ep = ep
        # through the stack: reference counted (a socket leaving the group cannot take it
        # from the server) and reported by MLD (RFC 3810 6.1)
        self.stack.join_group(self.nic, wire.ALL_DHCP_RELAY_AGENTS_AND_SERVERS)

    def close(self) -> None:
        if self._ep is not None:
            self._ep.close()
            self._ep = None
            if self.stack.nics.get(self.nic.id) is self.nic:  # removed: nothing to leave
                self.stack.leave_group(self.nic, wire.ALL_DHCP_RELAY_AGENTS_AND_SERVERS)

    # --- receiving -------------------------------------------------------------------------

    def _received(self, data: bytes, sport: int, pkt: PacketBuffer) -> None:
        if pkt.nic is not self.nic:
            return
        stats = self.stack.stats
        try:
            msg = wire.parse(data)
        except ParseError as err:
            stats.drop("dhcpv6", err.reason)
            return
        kind = msg.msg_type
        stats.count(f"dhcpv6.rx_{_NAMES.get(kind, 'unknown')}")
        if kind not in _SERVER_ID or not self._valid(msg):
            stats.drop("dhcpv6", DropReason.BAD_MESSAGE)
            return
        opts = msg.options
        if opts.server_id is not None and opts.server_id != self.duid:
            stats.count("dhcpv6.other_server")  # 16.4 etc.: not for us: discard
            return
        reply = self._answer(msg)
        if reply is not None:
            self._send(reply, pkt)

    @staticmethod
    def _valid(msg: wire.Message) -> bool:
        """RFC 8415 16.2 to 16.12: required and forbidden options."""
        opts = msg.options
        wants_server_id = _SERVER_ID[msg.msg_type]
        if wants_server_id is not None and wants_server_id != (opts.server_id is not None):
            return False
        if msg.msg_type == wire.INFORMATION_REQUEST:
            return not opts.ia_na  # 16.12: no IA options
        return opts.client_id is not None

    def _answer(self, msg: wire.Message) -> wire.Message | None:
        kind, opts = msg.msg_type, msg.options
        common = wire.Options(client_id=opts.client_id, server_id=self.duid)
        if kind in (wire.RELEASE, wire.DECLINE):  # 18.3.7, 18.3.8: nothing to undo but this
            return wire.Message(wire.REPLY, msg.transaction_id, common._replace(
                status=wire.StatusCode(wire.SUCCESS, "done")))
        if kind == wire.CONFIRM:
            return self._confirm(msg, common)
        config = common._replace(dns_servers=(self.dns_server,), domain_list=self.domains)
        if kind == wire.INFORMATION_REQUEST:  # 18.3.6
            return wire.Message(wire.REPLY, msg.transaction_id, config)
        if not opts.ia_na:
            # 18.3.9: nothing we could ever assign (only IA_TA or IA_PD were asked for)
            return wire.Message(wire.ADVERTISE if kind == wire.SOLICIT else wire.REPLY,
                                msg.transaction_id, common._replace(
                                    status=wire.StatusCode(wire.NO_ADDRS_AVAIL,
                                                           "only IA_NA is served")))
        if kind == wire.SOLICIT and not opts.rapid_commit:  # 18.3.1
            return wire.Message(wire.ADVERTISE, msg.transaction_id, config._replace(
                ia_na=self._bindings(opts.ia_na, retire=False), preference=PREFERENCE))
        # 18.3.1 with Rapid Commit, 18.3.2 (Request), 18.3.4 (Renew), 18.3.5 (Rebind):
        # addresses the client lists that are not ours get zero lifetimes
        return wire.Message(wire.REPLY, msg.transaction_id, config._replace(
            ia_na=self._bindings(opts.ia_na, retire=kind != wire.SOLICIT),
            rapid_commit=kind == wire.SOLICIT))

    def _bindings(self, requested: tuple[wire.IANA, ...], retire: bool) -> tuple[wire.IANA, ...]:
        """The first IA_NA gets ``guest6``; any other is told there is nothing left."""
        life = self.lifetime
        out = []
        for index, ia in enumerate(requested):
            if index:
                out.append(wire.IANA(ia.iaid, status=wire.StatusCode(
                    wire.NO_ADDRS_AVAIL, "one address per guest")))
                continue
            addresses = [wire.IAAddress(self.address, life, life)]
            if retire:
                addresses += [wire.IAAddress(a.address, 0, 0) for a in ia.addresses
                              if a.address != self.address]
            # 21.4: T1 and T2 at 0.5 and 0.8 times the preferred lifetime
            out.append(wire.IANA(ia.iaid, life // 2, life * 4 // 5, tuple(addresses)))
        return tuple(out)

    def _confirm(self, msg: wire.Message, common: wire.Options) -> wire.Message | None:
        """18.3.3: Success if every address is on the link, NotOnLink if one is not, and
        no answer when there are no addresses to judge."""
        addresses = [a.address for ia in msg.options.ia_na for a in ia.addresses]
        if not addresses:
            return None
        on_link = all(ipaddress.IPv6Address(a) in self.network for a in addresses)
        status = (wire.StatusCode(wire.SUCCESS, "on link") if on_link
                  else wire.StatusCode(wire.NOT_ON_LINK, "not on this link"))
        return wire.Message(wire.REPLY, msg.transaction_id, common._replace(status=status))

    # --- sending ---------------------------------------------------------------------------

    def _send(self, reply: wire.Message, request: PacketBuffer) -> None:
        """18.3: unicast to the source of the request on the link it came in on."""
        assert self._ep is not None
        client = request.src_addr
        local = self.link_local if ip_wire.is_link_local(client) else self.gateway
        if not any(client) or ip_wire.is_multicast(client):
            self.stack.stats.drop("dhcpv6", DropReason.BAD_ADDRESS)
            return
        if self.nic.needs_resolution and request.src_link:
            ep = self.nic.endpoints[EtherType.IPV6]
            route = Route(self.nic, ep, EtherType.IPV6, local, client, client,
                          link_addr=request.src_link)
        else:
            try:
                route = self.stack.find_route(client, local, self.nic.id)
            except OSError:
                self.stack.stats.drop("dhcpv6", DropReason.NO_ROUTE)
                return
        self._ep.send_datagram(route, wire.build(reply), wire.CLIENT_PORT)
        self.stack.stats.count(f"dhcpv6.tx_{_NAMES[reply.msg_type]}")
