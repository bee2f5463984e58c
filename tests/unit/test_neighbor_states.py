# SPDX-License-Identifier: MIT
"""Neighbor unreachability detection (RFC 4861 7.3, Appendix C) over IPv6 between two
stacks: STALE -> DELAY on send -> PROBE by unicast -> REACHABLE again or removed; the
router advertisement's Reachable Time, Retrans Timer and Cur Hop Limit (6.3.4)."""

from __future__ import annotations

import socket
import struct

from scapy.layers.inet6 import ICMPv6ND_NS, IPv6

from tests.unit.stackframes import UDP, Packet, frames, inject, mac_text, packed, record
from tests.unit.test_ndp import (
    ROUTER_LL,
    ROUTER_MAC,
    ndp_frame,
    neighbor_advertisement,
)
from ustack.network.neighbor import (
    MAX_RANDOM_FACTOR,
    MIN_RANDOM_FACTOR,
    NeighborCache,
    NeighborState,
)
from ustack.nic import NIC
from ustack.testing.pair import StackPair
from ustack.wire import icmp6
from ustack.wire import ndp as ndp_wire
from ustack.wire.proto import EtherType

B6 = packed("fd00::2")


def cache_of(nic: NIC) -> NeighborCache:
    cache = nic.neighbor_cache(EtherType.IPV6)
    assert cache is not None
    return cache


def send(pair: StackPair, payload: bytes = b"x") -> None:
    sock = pair.a.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.sendto(payload, ("fd00::2", 5000))
    sock.close()


def solicitations(pair: StackPair) -> list[Packet]:
    return [f for f in frames(pair.link_a, ICMPv6ND_NS) if f[ICMPv6ND_NS].tgt == "fd00::2"]


def stale_entry(pair: StackPair) -> NeighborCache:
    send(pair)
    pair.run(0.01)
    cache = cache_of(pair.nic_a)
    assert cache.state(B6) is NeighborState.REACHABLE
    pair.run(cache.reachable_time + 0.5)
    assert cache.state(B6) is NeighborState.STALE
    return cache


def test_rfc4861_7_3_3_send_to_stale_waits_in_delay_then_probes_by_unicast(
        pair: StackPair) -> None:
    cache = stale_entry(pair)
    record(pair)
    send(pair)
    pair.run(0.01)
    assert cache.state(B6) is NeighborState.DELAY
    assert solicitations(pair) == []  # no probe at once
    assert len(frames(pair.link_a, UDP)) == 1  # the packet went to the cached address
    pair.run(cache.config.delay_first_probe_time - 0.1)
    assert solicitations(pair) == [] and cache.state(B6) is NeighborState.DELAY
    pair.run(0.2)
    (probe,) = solicitations(pair)
    assert probe.dst == mac_text(pair.link_b.link_address)  # unicast, to the cached MAC
    assert probe[IPv6].dst == "fd00::2"
    # b answered with a solicited advertisement: REACHABLE, probing over
    assert cache.state(B6) is NeighborState.REACHABLE
    pair.run(5.0)
    assert len(solicitations(pair)) == 1


def test_rfc4861_7_3_3_unanswered_probes_remove_the_entry(pair: StackPair) -> None:
    cache = stale_entry(pair)
    pair.link_b.up = False  # b's answers are lost
    record(pair)
    send(pair)
    pair.run(cache.config.delay_first_probe_time + 0.01)
    assert cache.state(B6) is NeighborState.PROBE
    pair.run(cache.retrans_time * cache.config.max_unicast_probes)
    probes = solicitations(pair)
    assert len(probes) == cache.config.max_unicast_probes == 3
    assert all(p[IPv6].dst == "fd00::2" for p in probes)
    assert cache.state(B6) is None
    assert pair.a.stats["ipv6.neighbor_expired"] == 1
    record(pair)
    send(pair)
    pair.run(0.01)
    (fresh,) = solicitations(pair)
    assert fresh[IPv6].dst == "ff02::1:ff00:2"  # resolved afresh, by multicast


def test_rfc4861_7_3_1_upper_layer_confirmation_cancels_the_probe(pair: StackPair) -> None:
    cache = stale_entry(pair)
    record(pair)
    send(pair)
    pair.run(1.0)
    assert cache.state(B6) is NeighborState.DELAY
    assert cache.confirm(B6)  # e.g. TCP saw new data acknowledged
    assert cache.state(B6) is NeighborState.REACHABLE
    pair.run(cache.config.delay_first_probe_time + 2.0)
    assert solicitations(pair) == []
    assert not cache.confirm(packed("fd00::77"))  # no entry: nothing to confirm


def test_rfc4861_7_2_5_advertisement_without_override_makes_a_reachable_entry_stale(
        pair: StackPair) -> None:
    send(pair)
    pair.run(0.01)
    cache = cache_of(pair.nic_a)
    assert cache.state(B6) is NeighborState.REACHABLE
    b_mac = pair.link_b.link_address
    inject(pair.link_a, neighbor_advertisement("fd00::2", "02:00:00:00:00:42", solicited=True,
                                               override=False, dst="fd00::1"))
    pair.run(0.01)
    assert cache.state(B6) is NeighborState.STALE
    assert [e.link_addr for e in cache.entries() if e.addr == B6] == [b_mac]  # kept


def router_advertisement(reachable_ms: int, retrans_ms: int, hop_limit: int) -> bytes:
    options = ndp_wire.link_addr_option(ndp_wire.OPT_SOURCE_LINK_ADDR,
                                        bytes.fromhex(ROUTER_MAC.replace(":", "")))
    rest = ndp_wire.router_advertisement_rest(hop_limit, False, False, 1800)
    body = struct.pack("!II", reachable_ms, retrans_ms) + options
    return ndp_frame(ROUTER_MAC, "33:33:00:00:00:01", ROUTER_LL, "ff02::1",
                     icmp6.ROUTER_ADVERTISEMENT, rest, body)


def test_rfc4861_6_3_4_router_advertisement_sets_the_interface_parameters(
        pair: StackPair) -> None:
    inject(pair.link_a, router_advertisement(reachable_ms=10_000, retrans_ms=2500,
                                             hop_limit=17))
    pair.run(0.01)
    cache = cache_of(pair.nic_a)
    assert cache.base_reachable_time == 10.0
    # 6.3.2: ReachableTime is the base times a random factor in [0.5, 1.5]
    assert 10.0 * MIN_RANDOM_FACTOR <= cache.reachable_time <= 10.0 * MAX_RANDOM_FACTOR
    assert cache.retrans_time == 2.5
    record(pair)
    send(pair)
    pair.run(0.01)
    (data,) = frames(pair.link_a, UDP)
    assert data[IPv6].hlim == 17  # Cur Hop Limit
    # the probes of PROBE are RetransTimer (2.5 s) apart
    pair.link_b.up = False
    pair.run(cache.reachable_time + 0.5)
    record(pair)
    send(pair)
    pair.run(cache.config.delay_first_probe_time + 0.01)
    assert len(solicitations(pair)) == 1
    pair.run(2.4)
    assert len(solicitations(pair)) == 1
    pair.run(0.2)
    assert len(solicitations(pair)) == 2
    # zero means "unspecified": the values stay
    inject(pair.link_a, router_advertisement(reachable_ms=0, retrans_ms=0, hop_limit=0))
    pair.run(0.01)
    assert cache.base_reachable_time == 10.0 and cache.retrans_time == 2.5


def test_rfc4861_7_2_5_solicited_advertisement_without_the_option_confirms(
        pair: StackPair) -> None:
    """Linux answers a unicast probe without a target link-layer option (7.2.4 allows
    it): the cached address is confirmed, not ignored (found against the kernel)."""
    cache = stale_entry(pair)
    pair.link_b.up = False  # b's own answers are lost: only the hand-made one arrives
    send(pair)
    pair.run(cache.config.delay_first_probe_time + 0.01)
    assert cache.state(B6) is NeighborState.PROBE
    rest = ndp_wire.neighbor_advertisement_rest(False, True, False)
    inject(pair.link_a, ndp_frame(mac_text(pair.link_b.link_address),
                                  mac_text(pair.link_a.link_address), "fd00::2", "fd00::1",
                                  icmp6.NEIGHBOR_ADVERTISEMENT, rest, B6))
    pair.run(0.01)
    assert cache.state(B6) is NeighborState.REACHABLE
