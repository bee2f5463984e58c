# SPDX-License-Identifier: MIT
"""A DHCPv4 client for a ustack stack (RFC 2131 section 4.4), so that a ustack stack
can play a guest that configures itself.

:class:`DHCPClient` is driven by the stack's clock and its packets alone, so it
runs on the virtual clock as well as on asyncio; :func:`acquire` is the asyncio
wrapper that waits for the first lease. The client sets the BROADCAST flag
until it is bound: a ustack NIC does not accept unicast to an address it does
not hold yet (RFC 2131 4.1). It does not probe the offered address with ARP.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.clock import Timer
from ustack.nic import NIC
from ustack.route import Route, RouteEntry
from ustack.transport.udp import UDPEndpoint
from ustack.wire import dhcp as wire
from ustack.wire import ethernet
from ustack.wire import ipv4 as ip_wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import EtherType

if TYPE_CHECKING:
    from ustack.stack import Stack

INIT = "INIT"
SELECTING = "SELECTING"
REQUESTING = "REQUESTING"
BOUND = "BOUND"
RENEWING = "RENEWING"
REBINDING = "REBINDING"
STOPPED = "STOPPED"

#: what the client asks for (RFC 2132 9.8)
PARAMETERS = (wire.OPT_SUBNET_MASK, wire.OPT_ROUTER, wire.OPT_DNS, wire.OPT_DOMAIN_NAME,
              wire.OPT_MTU, wire.OPT_BROADCAST_ADDRESS, wire.OPT_LEASE_TIME,
              wire.OPT_RENEWAL_TIME, wire.OPT_REBINDING_TIME)
FIRST_RETRANSMIT = 4.0  # RFC 2131 4.1: 4 s, doubling up to 64 s, each +-1 s
MAX_RETRANSMIT = 64.0
REQUEST_TRIES = 4  # REQUESTs sent before going back to INIT (4.4.1)
MIN_RENEW_WAIT = 60.0  # 4.4.5: retransmissions in RENEWING/REBINDING wait at least this
NAK_RESTART = 1.0  # a pause before starting over after a DHCPNAK
INFINITE = 0xFFFFFFFF


@dataclass(frozen=True)
class Lease:
    address: bytes
    prefix_len: int
    server_id: bytes
    routers: tuple[bytes, ...]
    dns_servers: tuple[bytes, ...]
    domain_name: bytes | None
    mtu: int | None
    lease_time: int  # seconds; INFINITE for a permanent lease
    renewal_time: float  # T1, seconds after ``acquired``
    rebinding_time: float  # T2
    acquired: float  # stack clock time the acknowledged request was sent

    def __str__(self) -> str:
        return f"{ipaddress.IPv4Address(self.address)}/{self.prefix_len}"


def prefix_length(mask: bytes | None, address: bytes) -> int | None:
    """The subnet mask as a prefix length (None if not contiguous); without a mask the
    classful default (RFC 1122 3.3.1.1 falls back to it too)."""
    if mask is None:
        first = address[0]
        return 8 if first < 128 else 16 if first < 192 else 24
    value = int.from_bytes(mask, "big")
    length = bin(value).count("1")
    return length if value == (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF else None


class DHCPClient:
    """States as RFC 2131 figure 5 (without INIT-REBOOT). ``on_bound`` is called with the
    lease on every DHCPACK: the first one and each renewal."""

    def __init__(self, stack: Stack, nic: NIC | int | str | None = None, *,
                 on_bound: Callable[[Lease], None] | None = None,
                 client_id: bytes | None = None, hostname: str | None = None) -> None:
        self.stack = stack
        self.nic = nic if isinstance(nic, NIC) else stack.nic(nic)
        self.mac = self.nic.link.link_address
        self.client_id = client_id if client_id is not None else b"\x01" + self.mac
        self.hostname = hostname.encode("ascii") if hostname else None
        self.on_bound = on_bound
        self.state = STOPPED
        self.lease: Lease | None = None
        self._ep: UDPEndpoint | None = None
        self._offer: wire.Message | None = None
        self._xid = 0
        self._began = 0.0  # when the current exchange started (secs field, lease times)
        self._attempt = 0
        self._retransmit: Timer | None = None
        self._lease_timers: list[Timer] = []
        self._route: RouteEntry | None = None
        self._dns_added: list[bytes] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._ep is not None:
            return
        ep = UDPEndpoint(self.stack, 4)
        ep.reuse = True  # one client per NIC, all on port 68
        ep.broadcast = True
        ep.on_packet = self._received
        ep.bind(bytes(4), wire.CLIENT_PORT)
        self._ep = ep
        self._init()

    def close(self, release: bool = False) -> None:
        """Stop; with ``release``, give the address back (4.4.6) and unconfigure it."""
        self._cancel_retransmit()
        self._cancel_lease_timers()
        if release and self.lease is not None and self._ep is not None:
            self._xid = self.stack.random.getrandbits(32)
            lease = self.lease
            msg = self._message(wire.RELEASE, ciaddr=lease.address, broadcast=False,
                                server_id=lease.server_id)
            self._send(msg, unicast_to=lease.server_id)
            self._unconfigure()
        if self._ep is not None:
            self._ep.close()
            self._ep = None
        self.state = STOPPED

    # --- the exchanges ----------------------------------------------------------------------

    def _new_exchange(self, state: str) -> None:
        self.state = state
        self._xid = self.stack.random.getrandbits(32)
        self._began = self.stack.clock.now()
        self._attempt = 0

    def _init(self) -> None:
        self._offer = None
        self._new_exchange(SELECTING)
        self._transmit()

    def _transmit(self) -> None:
        """Send (or resend) what the state calls for, and arm the retransmission."""
        self._retransmit = None
        state = self.state
        if state == REQUESTING and self._attempt >= REQUEST_TRIES:
            self.stack.stats.count("dhcp_client.request_timeout")
            self._init()
            return
        delay = min(FIRST_RETRANSMIT * 2 ** self._attempt, MAX_RETRANSMIT)
        delay += self.stack.random.uniform(-1.0, 1.0)
        self._attempt += 1
        if state == SELECTING:
            self._send(self._message(wire.DISCOVER), None)
        elif state == REQUESTING:
            offer = self._offer
            assert offer is not None
            self._send(self._message(wire.REQUEST, server_id=offer.options.server_id,
                                     requested=offer.yiaddr), None)
        elif state in (RENEWING, REBINDING):
            lease = self.lease
            assert lease is not None
            msg = self._message(wire.REQUEST, ciaddr=lease.address, broadcast=False)
            if state == RENEWING:  # 4.4.5: unicast to the server, until T2
                self._send(msg, unicast_to=lease.server_id)
                deadline = lease.acquired + lease.rebinding_time
            else:  # broadcast to any server, until the lease expires
                self._send(msg, None)
                deadline = lease.acquired + lease.lease_time
            delay = max((deadline - self.stack.clock.now()) / 2, MIN_RENEW_WAIT)
        else:
            return
        self._retransmit = self.stack.clock.call_later(delay, self._transmit)

    def _message(self, kind: int, *, ciaddr: bytes = bytes(4), broadcast: bool = True,
                 server_id: bytes | None = None, requested: bytes | None = None) -> wire.Message:
        secs = min(int(self.stack.clock.now() - self._began), 0xFFFF)
        asks = kind in (wire.DISCOVER, wire.REQUEST)
        options = wire.Options(
            message_type=kind, server_id=server_id, requested_address=requested,
            client_id=self.client_id, hostname=self.hostname if asks else None,
            parameter_request_list=PARAMETERS if asks else (),
            max_message_size=min(self.nic.link.mtu, 0xFFFF) if asks else None)
        return wire.Message(wire.BOOTREQUEST, self._xid, self.mac, options, secs=secs,
                            flags=wire.FLAG_BROADCAST if broadcast else 0, ciaddr=ciaddr)

    def _send(self, msg: wire.Message, unicast_to: bytes | None) -> None:
        assert self._ep is not None
        data = wire.build(msg)
        self.stack.stats.count("dhcp_client.tx")
        if unicast_to is not None:
            try:
                self._ep.sendto(data, (unicast_to, wire.SERVER_PORT))
            except OSError:
                self.stack.stats.drop("dhcp_client", DropReason.NO_ROUTE)
            return
        # from 0.0.0.0 until an address is bound (RFC 2131 4.1), to everyone on the link
        source = msg.ciaddr if any(msg.ciaddr) and self.nic.has_address(msg.ciaddr) \
            else bytes(4)
        route = Route(self.nic, self.nic.endpoints[EtherType.IPV4], EtherType.IPV4, source,
                      ip_wire.BROADCAST, ip_wire.BROADCAST, link_addr=ethernet.BROADCAST)
        self._ep.send_datagram(route, data, wire.SERVER_PORT)

    # --- receiving -------------------------------------------------------------------------

    def _received(self, data: bytes, _sport: int, pkt: PacketBuffer) -> None:
        if pkt.nic is not self.nic:
            return
        stats = self.stack.stats
        try:
            msg = wire.parse(data)
        except ParseError as err:
            stats.drop("dhcp_client", err.reason)
            return
        if msg.op != wire.BOOTREPLY or msg.xid != self._xid or msg.chaddr != self.mac:
            stats.count("dhcp_client.not_ours")
            return
        kind = msg.options.message_type
        waiting = self.state in (REQUESTING, RENEWING, REBINDING)
        if self.state == SELECTING and kind == wire.OFFER:
            self._offered(msg)
        elif waiting and kind == wire.ACK:
            self._acknowledged(msg)
        elif waiting and kind == wire.NAK:
            stats.count("dhcp_client.nak")
            self._cancel_retransmit()
            self._cancel_lease_timers()
            self._unconfigure()
            self.state = INIT
            self._retransmit = self.stack.clock.call_later(NAK_RESTART, self._init)
        else:
            stats.count("dhcp_client.ignored")

    def _offered(self, msg: wire.Message) -> None:
        """4.4.1: take the first acceptable offer."""
        if not any(msg.yiaddr) or msg.options.server_id is None:
            self.stack.stats.drop("dhcp_client", DropReason.BAD_MESSAGE)
            return
        self.stack.stats.count("dhcp_client.offer")
        self._cancel_retransmit()
        self._offer = msg
        self.state = REQUESTING
        self._attempt = 0  # the same xid and start time go on (4.4.1)
        self._transmit()

    def _acknowledged(self, msg: wire.Message) -> None:
        opts = msg.options
        plen = prefix_length(opts.subnet_mask, msg.yiaddr)
        server_id = opts.server_id or (self.lease.server_id if self.lease else None)
        if not any(msg.yiaddr) or opts.lease_time is None or plen is None or server_id is None:
            self.stack.stats.drop("dhcp_client", DropReason.BAD_MESSAGE)
            return
        self._cancel_retransmit()
        time = opts.lease_time
        t1 = opts.renewal_time if opts.renewal_time is not None else time * 0.5
        t2 = opts.rebinding_time if opts.rebinding_time is not None else time * 0.875
        if not t1 < t2 < time:  # 4.4.5 defaults when the server's are inconsistent
            t1, t2 = time * 0.5, time * 0.875
        lease = Lease(msg.yiaddr, plen, server_id, opts.routers, opts.dns_servers,
                      opts.domain_name, opts.mtu, time, t1, t2, self._began)
        self._configure(lease)
        self.state = BOUND
        self.stack.stats.count("dhcp_client.bound")
        self._cancel_lease_timers()
        if time != INFINITE:
            clock = self.stack.clock
            self._lease_timers = [clock.call_at(lease.acquired + t1, self._renew, RENEWING),
                                  clock.call_at(lease.acquired + t2, self._renew, REBINDING),
                                  clock.call_at(lease.acquired + time, self._expired)]
        if self.on_bound is not None:
            self.on_bound(lease)

    def _renew(self, state: str) -> None:
        if self.state not in (BOUND, RENEWING):
            return
        self._cancel_retransmit()
        self._new_exchange(state)
        self._transmit()

    def _expired(self) -> None:
        """4.4.5: at expiry the address is given up and the client starts over."""
        self.stack.stats.count("dhcp_client.expired")
        self._cancel_retransmit()
        self._lease_timers = []
        self._unconfigure()
        self._init()

    # --- configuring the stack ---------------------------------------------------------------

    def _configure(self, lease: Lease) -> None:
        """The address with its subnet route, the default route and the DNS servers."""
        old = self.lease
        if old is not None and (old.address, old.prefix_len, old.routers) != (
                lease.address, lease.prefix_len, lease.routers):
            self._unconfigure()
        stack, nic = self.stack, self.nic
        if not nic.has_address(lease.address):
            stack.add_address(nic.id, (lease.address, lease.prefix_len))
        if lease.routers and self._route is None:
            self._route = stack.add_route(
                "default", str(ipaddress.IPv4Address(lease.routers[0])), nic.id)
        for server in lease.dns_servers:
            if server not in stack.dns_servers:
                stack.dns_servers.append(server)
                self._dns_added.append(server)
        self.lease = lease

    def _unconfigure(self) -> None:
        lease, self.lease = self.lease, None
        stack = self.stack
        if self._route is not None:
            stack.routes.remove(self._route)
            self._route = None
        for server in self._dns_added:
            if server in stack.dns_servers:
                stack.dns_servers.remove(server)
        self._dns_added = []
        if lease is not None:
            stack.remove_address(lease.address)
            net = ipaddress.IPv4Network((lease.address, lease.prefix_len), strict=False)
            # Stack.remove_address leaves the subnet route that add_address made
            stack.routes.remove(RouteEntry(net.network_address.packed, lease.prefix_len, None,
                                           self.nic.id))

    def _cancel_retransmit(self) -> None:
        if self._retransmit is not None:
            self._retransmit.cancel()
            self._retransmit = None

    def _cancel_lease_timers(self) -> None:
        for timer in self._lease_timers:
            timer.cancel()
        self._lease_timers = []


async def acquire(stack: Stack, nic: NIC | int | str | None = None, *, timeout: float = 60.0,
                  client_id: bytes | None = None,
                  hostname: str | None = None) -> tuple[DHCPClient, Lease]:
    """Start a client on the stack's (running) loop and wait for its first lease; the
    client goes on renewing it until closed. Raises TimeoutError."""
    future: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()

    def bound(lease: Lease) -> None:
        if not future.done():
            future.set_result(lease)

    client = DHCPClient(stack, nic, on_bound=bound, client_id=client_id, hostname=hostname)
    client.start()
    try:
        lease = await asyncio.wait_for(future, timeout)
    except BaseException:
        client.close()
        raise
    return client, lease
