# SPDX-License-Identifier: MIT
"""Upper-layer reachability confirmation (RFC 4861 7.3.1): TCP's forward progress (new
data acknowledged, new in-order data received) keeps the next hop's neighbor entry
REACHABLE, so no unicast probes (7.3.3) are sent while a connection moves data. The
same cache serves ARP, so IPv4 gets it too. Traffic without such confirmation (UDP)
goes STALE -> DELAY -> PROBE every ReachableTime."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import pytest

from tests.unit.tcp.helpers import ADDRS, AF4, AF6, DONTWAIT, connect, ep_of, pair
from ustack.network.neighbor import NeighborCache, NeighborState
from ustack.nic import NIC
from ustack.stack import Stack
from ustack.testing.pair import StackPair
from ustack.wire.proto import EtherType

FAMILIES = pytest.mark.parametrize("family", [AF4, AF6], ids=["ipv4-arp", "ipv6-ndp"])
DURATION = 120.0  # well past the longest ReachableTime (30 s * 1.5)


def _cache(nic: NIC, family: int) -> NeighborCache:
    cache = nic.neighbor_cache(EtherType.IPV4 if family == AF4 else EtherType.IPV6)
    assert cache is not None
    return cache


def _unicast_probes(stack: Stack) -> int:
    return sum(n for name, n in stack.stats.counters.items() if name.endswith(".neighbor_probe"))


def _states_during(p: StackPair, family: int,
                   step: Callable[[], None]) -> tuple[set[NeighborState], set[NeighborState]]:
    """Run ``step`` every 0.5 s for DURATION; the states a's entry for b and b's entry
    for a went through."""
    a_addr, b_addr = (ipaddress.ip_address(x).packed for x in ADDRS[family])
    cache_a, cache_b = _cache(p.nic_a, family), _cache(p.nic_b, family)
    seen_a: set[NeighborState] = set()
    seen_b: set[NeighborState] = set()
    end = p.clock.now() + DURATION
    while p.clock.now() < end:
        step()
        p.clock.advance(0.5)
        state_a, state_b = cache_a.state(b_addr), cache_b.state(a_addr)
        assert state_a is not None and state_b is not None
        seen_a.add(state_a)
        seen_b.add(state_b)
    return seen_a, seen_b


@FAMILIES
def test_rfc4861_7_3_1_tcp_progress_keeps_the_neighbor_reachable(family: int) -> None:
    p = pair()
    c = connect(p, family)

    def step() -> None:
        c.client.send(b"d" * 500, DONTWAIT)
        p.clock.run_ready()
        assert c.server.recv(4096, DONTWAIT) == b"d" * 500

    seen_a, seen_b = _states_during(p, family, step)
    # a: its data acknowledged; b: new in-order data received
    assert seen_a == {NeighborState.REACHABLE}
    assert seen_b == {NeighborState.REACHABLE}
    assert _unicast_probes(p.a) == 0 and _unicast_probes(p.b) == 0
    # cheap: at most about once a second per connection, not once per segment
    confirms = p.a.stats["tcp.neighbor_confirms"]
    assert 0 < confirms <= DURATION + 2
    assert p.a.stats["tcp.in_segs"] > confirms


@FAMILIES
def test_rfc4861_7_3_3_traffic_without_confirmation_probes_by_unicast(family: int) -> None:
    """The control: the same rate of UDP, which confirms nothing, lets the entry age."""
    p = pair()
    rx = p.b.socket(family, socket.SOCK_DGRAM)
    rx.bind((ADDRS[family][1], 7000))
    tx = p.a.socket(family, socket.SOCK_DGRAM)

    def step() -> None:
        tx.sendto(b"u" * 500, (ADDRS[family][1], 7000))
        p.clock.run_ready()
        assert rx.recv(4096, DONTWAIT) == b"u" * 500

    seen_a, _ = _states_during(p, family, step)
    # REACHABLE -> STALE after ReachableTime -> DELAY on the next send -> PROBE (a unicast
    # probe, answered at once: REACHABLE again)
    assert {NeighborState.REACHABLE, NeighborState.STALE, NeighborState.DELAY} <= seen_a
    assert _unicast_probes(p.a) >= 2  # once per ReachableTime at least
    assert p.a.stats["tcp.neighbor_confirms"] == 0


def test_confirmation_skips_routes_without_neighbor_resolution() -> None:
    """Traffic to the stack's own address has no neighbor to confirm: one look at the
    route, then never again."""
    p = pair()
    own = ADDRS[AF6][0]
    srv = p.a.socket(AF6, socket.SOCK_STREAM)
    srv.bind((own, 90))
    srv.listen(1)
    cli = p.a.socket(AF6, socket.SOCK_STREAM)
    cli.setblocking(False)
    cli.connect_ex((own, 90))
    p.clock.run_ready()
    conn, _ = srv.accept()
    for _ in range(5):
        cli.send(b"x" * 100, DONTWAIT)
        p.clock.run_ready()
        assert conn.recv(4096, DONTWAIT) == b"x" * 100
        p.clock.advance(2.0)
    assert p.a.stats["tcp.neighbor_confirms"] == 0
    assert ep_of(cli).neighbor_confirm_at == float("inf")
