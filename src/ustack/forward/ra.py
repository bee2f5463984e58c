# SPDX-License-Identifier: MIT
"""Router advertisements for the guest link (RFC 4861 section 6.2, RFC 8106).

The gateway advertises itself from its link-local address as the default router
with the guest prefix (on-link and autonomous), the link MTU and the gateway as
recursive DNS server. The Managed and Other flags are set, so the guest also asks
DHCPv6 (for ``guest6`` and the domain list). Unsolicited advertisements follow
6.2.4 (the first few at most 16 s apart), solicitations are answered after a
short random delay with multicast advertisements rate limited as 6.2.6 says, and
a last advertisement with a zero router lifetime is sent on close (6.2.5).
"""

from __future__ import annotations

import ipaddress
import math
import struct
from typing import TYPE_CHECKING, cast

from ustack.buffer import PacketBuffer
from ustack.clock import Timer
from ustack.route import Route
from ustack.wire import ethernet
from ustack.wire import icmp6 as icmp_wire
from ustack.wire import ipv6 as ip_wire
from ustack.wire import ndp as wire
from ustack.wire.proto import EtherType, IPProto

if TYPE_CHECKING:
    from ustack.forward.config import GuestNetwork
    from ustack.network.ipv6 import IPv6Protocol
    from ustack.network.ndp import NDP
    from ustack.nic import NIC
    from ustack.stack import Stack

# Router configuration defaults (RFC 4861 6.2.1) and constants (section 10).
MAX_RTR_ADV_INTERVAL = 600.0
MIN_RTR_ADV_INTERVAL = 0.33 * MAX_RTR_ADV_INTERVAL
ROUTER_LIFETIME = 1800  # 3 * MaxRtrAdvInterval
CUR_HOP_LIMIT = 64
VALID_LIFETIME = 2592000  # 30 days
PREFERRED_LIFETIME = 604800  # 7 days
MAX_INITIAL_RTR_ADVERT_INTERVAL = 16.0
MAX_INITIAL_RTR_ADVERTISEMENTS = 3
MAX_RA_DELAY_TIME = 0.5
MIN_DELAY_BETWEEN_RAS = 3.0
#: RFC 8106 5.1: RDNSS lifetime, by default at least 3 * MaxRtrAdvInterval
RDNSS_LIFETIME = 1800
HOP_LIMIT = 255  # RFC 4861 6.1.2: proves the advertisement is from the link


class RouterAdvertiser:
    def __init__(self, stack: Stack, nic: NIC, net: GuestNetwork,
                 max_interval: float = MAX_RTR_ADV_INTERVAL,
                 router_lifetime: int = ROUTER_LIFETIME) -> None:
        self.stack = stack
        self.nic = nic
        self.source = ipaddress.IPv6Address(net.gateway6_link_local).packed
        network = ipaddress.IPv6Network(net.network6)
        self.prefix = wire.PrefixInfo(network.network_address.packed, network.prefixlen,
                                      True, True, VALID_LIFETIME, PREFERRED_LIFETIME)
        self.dns = ipaddress.IPv6Address(net.dns_forward6).packed
        self.mtu = min(net.mtu, nic.link.mtu)
        self.max_interval = max_interval
        self.min_interval = 0.33 * max_interval
        self.router_lifetime = router_lifetime
        self.sent = 0  # multicast advertisements so far
        self._last_sent = -math.inf
        self._periodic: Timer | None = None
        self._response: Timer | None = None
        self._running = False

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Take the link-local address, join all-routers, answer solicitations, advertise."""
        if self._running:
            return
        self._running = True
        if not self.nic.has_address(self.source):
            # no DAD: the gateway owns the link (and a tentative source could not advertise)
            self.stack.add_address(self.nic.id, (self.source, 64), dad=False)
        # RFC 4861 6.2.2; through the stack: reference counted and reported by MLD
        self.stack.join_group(self.nic, ip_wire.ALL_ROUTERS)
        self._ndp().serve_as_router(self.nic.id, self._solicited)
        self._periodic = self.stack.clock.call_later(0.0, self._advertise_periodically)

    def close(self) -> None:
        """6.2.5: stop being a router, with a last advertisement of lifetime zero."""
        if not self._running:
            return
        self._running = False
        for timer in (self._periodic, self._response):
            if timer is not None:
                timer.cancel()
        self._periodic = self._response = None
        self._ndp().serve_as_router(self.nic.id, None)
        if self.stack.nics.get(self.nic.id) is self.nic:  # removed: nothing to leave or say
            self.stack.leave_group(self.nic, ip_wire.ALL_ROUTERS)
            self._send(router_lifetime=0)

    def _ndp(self) -> NDP:
        return cast("IPv6Protocol", self.stack.network_protocols[EtherType.IPV6]).ndp

    # --- scheduling ------------------------------------------------------------------------

    def _advertise_periodically(self) -> None:
        self._periodic = None
        self._send(self.router_lifetime)
        self._schedule()

    def _schedule(self) -> None:
        """6.2.4: uniformly in [MinRtrAdvInterval, MaxRtrAdvInterval], but the first
        MAX_INITIAL_RTR_ADVERTISEMENTS at most MAX_INITIAL_RTR_ADVERT_INTERVAL apart."""
        if self._periodic is not None:
            self._periodic.cancel()
        interval = self.stack.random.uniform(self.min_interval, self.max_interval)
        if self.sent < MAX_INITIAL_RTR_ADVERTISEMENTS:
            interval = min(interval, MAX_INITIAL_RTR_ADVERT_INTERVAL)
        self._periodic = self.stack.clock.call_later(interval, self._advertise_periodically)

    def _solicited(self, _pkt: PacketBuffer, _options: wire.Options) -> None:
        """6.2.6: answer after a random delay up to MAX_RA_DELAY_TIME, with multicast
        advertisements at least MIN_DELAY_BETWEEN_RAS apart; one answer covers the
        solicitations that come while it is pending, and so does an earlier periodic one."""
        if self._response is not None:
            return
        now = self.stack.clock.now()
        when = max(now + self.stack.random.uniform(0.0, MAX_RA_DELAY_TIME),
                   self._last_sent + MIN_DELAY_BETWEEN_RAS)
        if self._periodic is not None and self._periodic.when <= when:
            return
        self._response = self.stack.clock.call_at(when, self._answer)

    def _answer(self) -> None:
        self._response = None
        self._send(self.router_lifetime)
        self.stack.stats.count("ra.tx_solicited")
        self._schedule()  # the unsolicited timer restarts from this advertisement

    # --- the message -----------------------------------------------------------------------

    def message(self, router_lifetime: int) -> bytes:
        """The ICMPv6 Router Advertisement (RFC 4861 4.2), checksum included."""
        options = wire.link_addr_option(wire.OPT_SOURCE_LINK_ADDR, self.nic.link.link_address)
        if self.mtu >= icmp_wire.MIN_MTU:
            options += wire.mtu_option(self.mtu)
        options += wire.prefix_option(self.prefix)
        options += wire.rdnss_option((self.dns,), RDNSS_LIFETIME)
        rest = wire.router_advertisement_rest(CUR_HOP_LIMIT, managed=True, other=True,
                                              lifetime=router_lifetime)
        body = struct.pack("!II", 0, 0) + options  # reachable time, retrans timer: unspecified
        return icmp_wire.build(icmp_wire.ROUTER_ADVERTISEMENT, 0, rest, body, self.source,
                               ip_wire.ALL_NODES)

    def _send(self, router_lifetime: int) -> None:
        ep = self.nic.endpoints[EtherType.IPV6]
        route = Route(self.nic, ep, EtherType.IPV6, self.source, ip_wire.ALL_NODES,
                      ip_wire.ALL_NODES,
                      link_addr=ethernet.ipv6_multicast_mac(ip_wire.ALL_NODES))
        message = self.message(router_lifetime)
        ep.write_packet(route, PacketBuffer(ep.max_header_length, message), IPProto.ICMPV6,
                        HOP_LIMIT, 0)
        self.sent += 1
        self._last_sent = self.stack.clock.now()
        self.stack.stats.count("ra.tx")
