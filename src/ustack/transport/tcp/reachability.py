# SPDX-License-Identifier: MIT
"""Upper-layer reachability confirmation (RFC 4861 7.3.1): a connection that makes
forward progress (new data acknowledged, new in-order data received) proves that
its next hop is reachable, so the neighbor entry is kept REACHABLE without the
unicast probes of 7.3.3. Linux does the same with dst_confirm / sk_dst_confirm.

The segment path pays one comparison (``now >= ep.neighbor_confirm_at``); the
cache is touched at most once per :data:`CONFIRM_INTERVAL` per connection (or more
often when ReachableTime is shorter), and never for routes that resolve nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ustack.transport.tcp.endpoint import TCPEndpoint

#: at most this often per connection (s); a fraction of ReachableTime when that is shorter
CONFIRM_INTERVAL = 1.0
NEVER = float("inf")


def confirm(ep: TCPEndpoint, now: float) -> None:
    """Confirm ``ep``'s next hop now, and say when to do it again."""
    route = ep.route
    if route is None or route.is_local or route.link_addr is not None:
        ep.neighbor_confirm_at = NEVER  # loopback, or a link address fixed in advance
        return
    cache = route.nic.neighbors.get(route.network_protocol)
    if cache is None:
        ep.neighbor_confirm_at = NEVER  # a link without neighbor resolution
        return
    cache.confirm(route.next_hop)
    ep.stack.stats.count("tcp.neighbor_confirms")
    ep.neighbor_confirm_at = now + min(CONFIRM_INTERVAL, cache.reachable_time / 4)
