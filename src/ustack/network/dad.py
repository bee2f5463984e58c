# SPDX-License-Identifier: MIT
"""Duplicate Address Detection (RFC 4862 5.4) for IPv6 addresses assigned to a NIC.

A new address is *tentative* (RFC 4862 2: "not considered assigned to an
interface in the usual sense"): it is taken off the NIC's assigned set, so it is
neither a source address nor a destination we accept. DAD joins its
solicited-node group (reported by MLD), then sends DupAddrDetectTransmits
neighbor solicitations from the unspecified address to that group, RetransTimer
apart (5.4.2); if no advertisement for the address (5.4.4) and no solicitation
for it from another node doing DAD (5.4.3) arrives within RetransTimer of the
last one, the address is assigned. Otherwise it is a duplicate: counted, logged,
and removed (5.4.5); a duplicate link-local address formed from the NIC's
hardware address disables IPv6 on that NIC.

5.4.2: the join (and so the first probe) waits a random 0..MAX_RTR_SOLICITATION_DELAY
when the probe would be the first message sent from the interface since it came
up, or when a router advertisement sent to a multicast address configured the
address (many nodes hear it at once).
``StackOptions.dad_transmits = 0`` turns DAD off (Linux's accept_dad=0).
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from ustack.clock import Timer
from ustack.wire import ethernet
from ustack.wire import icmp6 as icmp_wire
from ustack.wire import ipv6 as ip_wire
from ustack.wire import ndp as wire
from ustack.wire.proto import EtherType

if TYPE_CHECKING:
    from ustack.network.ndp import NDP
    from ustack.nic import NIC, InterfaceAddress
    from ustack.stack import Stack

log = logging.getLogger("ustack.dad")

DoneHandler = Callable[["NIC", bytes], None]
DuplicateHandler = Callable[["NIC", bytes], None]

MAX_RTR_SOLICITATION_DELAY = 1.0  # RFC 4861 10, used by RFC 4862 5.4.2


class _Tentative:
    __slots__ = ("entry", "nic", "on_done", "sent", "timer")

    def __init__(self, nic: NIC, entry: InterfaceAddress, on_done: DoneHandler | None) -> None:
        self.nic = nic
        self.entry = entry
        self.on_done = on_done
        self.sent = 0
        self.timer: Timer | None = None


class DuplicateAddressDetection:
    def __init__(self, stack: Stack, ndp: NDP) -> None:
        self.stack = stack
        self.ndp = ndp
        self._tentative: dict[bytes, _Tentative] = {}
        #: addresses found in use by another node (RFC 4862 5.4.5), in order
        self.duplicates: list[tuple[int, bytes]] = []
        #: told of each duplicate (after it is removed): NDP disables IPv6 on a NIC whose
        #: hardware-derived link-local address is a duplicate (5.4.5)
        self.on_duplicate: DuplicateHandler | None = None
        # start delays draw from a stream of their own, so that adding addresses does not
        # shift the stack's (ports, sequence numbers) for a given seed
        self.random = random.Random(None if stack.seed is None else f"{stack.seed}-dad")

    @property
    def transmits(self) -> int:
        return max(0, self.stack.options.dad_transmits)

    def is_tentative(self, addr: bytes) -> bool:
        return addr in self._tentative

    def tentative_addresses(self, nic: NIC) -> list[bytes]:
        return [a for a, t in self._tentative.items() if t.nic is nic]

    def start(self, nic: NIC, entry: InterfaceAddress, on_done: DoneHandler | None = None,
              delay: bool = False) -> bool:
        """Begin DAD for an address just assigned; False (nothing to do) when DAD is off or
        the link needs no resolution (loopback, tun). ``delay``: the address came from a
        multicast router advertisement (5.4.2). An address already tentative stays so."""
        addr = entry.addr
        if (self.transmits == 0 or not nic.needs_resolution or not any(addr)
                or ip_wire.is_multicast(addr)):
            return False
        nic.remove_address(addr)  # tentative: not assigned yet (RFC 4862 2)
        if addr in self._tentative:
            return True
        state = self._tentative[addr] = _Tentative(nic, entry, on_done)
        self.stack.stats.count("ndp.dad_started")
        # 5.4.2: the first message the interface sends since it came up
        first = nic.stats.counters["tx_packets"] == 0
        wait = self.random.uniform(0.0, MAX_RTR_SOLICITATION_DELAY) if delay or first else 0.0
        if wait:
            self.stack.stats.count("ndp.dad_delayed")
        # even undelayed, the first probe goes on the next turn, after the address's
        # other set-up (routes, the rest of the stack's hooks)
        state.timer = self.stack.clock.call_later(wait, self._begin, state)
        return True

    def cancel(self, addr: bytes) -> bool:
        """Stop DAD for ``addr`` (removed while tentative); False if it was not tentative."""
        state = self._tentative.pop(addr, None)
        if state is None:
            return False
        if state.timer is not None:
            state.timer.cancel()
        self.stack.stats.count("ndp.dad_cancelled")
        return True

    def assume_unique(self, addr: bytes) -> None:
        """Stop DAD for ``addr`` and assign it now (Linux's ``nodad`` flag)."""
        state = self._tentative.get(addr)
        if state is not None:
            if state.timer is not None:
                state.timer.cancel()
            self.stack.stats.count("ndp.dad_skipped")
            self._assign(state)

    def _retrans_time(self, nic: NIC) -> float:
        cache = nic.neighbors.get(EtherType.IPV6)
        return cache.retrans_time if cache is not None else 1.0

    def _begin(self, state: _Tentative) -> None:
        """5.4.2: join the solicited-node group (MLD reports it), then probe."""
        state.timer = None
        if self._tentative.get(state.entry.addr) is not state:
            return
        self.stack.join_solicited_node(state.nic, state.entry.addr)
        self._transmit(state)

    def _transmit(self, state: _Tentative) -> None:
        state.timer = None
        addr, nic = state.entry.addr, state.nic
        if self._tentative.get(addr) is not state:
            return
        if state.sent >= self.transmits:
            self.stack.stats.count("ndp.dad_succeeded")
            self._assign(state)
            return
        state.sent += 1
        # 5.4.2: from the unspecified address to the solicited-node group, no SLLA option
        group = ip_wire.solicited_node(addr)
        self.ndp.send_raw(nic, ip_wire.ANY, group, ethernet.ipv6_multicast_mac(group),
                          icmp_wire.NEIGHBOR_SOLICITATION, 0,
                          wire.neighbor_solicitation_body(addr, None))
        self.stack.stats.count("ndp.dad_tx_ns")
        state.timer = self.stack.clock.call_later(self._retrans_time(nic), self._transmit, state)

    def _assign(self, state: _Tentative) -> None:
        del self._tentative[state.entry.addr]
        nic = state.nic
        if nic.id not in self.stack.nics or self.stack.local_nic(state.entry.addr) is not nic:
            return  # the NIC or the address went away meanwhile
        nic.add_address(state.entry.addr, state.entry.prefix_len)
        self.stack.join_solicited_node(nic, state.entry.addr)  # skipped DAD: not yet joined
        if state.on_done is not None:
            state.on_done(nic, state.entry.addr)

    def conflict(self, nic: NIC, addr: bytes, why: str) -> bool:
        """Evidence that another node uses (or is claiming) a tentative address of ours:
        it is a duplicate (RFC 4862 5.4.3, 5.4.4). False when ``addr`` is not tentative."""
        state = self._tentative.get(addr)
        if state is None or state.nic is not nic:
            return False
        self.duplicates.append((nic.id, addr))
        self.stack.stats.count("ndp.dad_duplicate")
        log.warning("%s: IPv6 address %s is a duplicate (%s); not assigned (RFC 4862 5.4.5)",
                    nic.name, ipaddress.ip_address(addr), why)
        # 5.4.5: not assigned; removing it stops DAD and takes away its route and group
        self.stack.remove_address(addr)
        if self.on_duplicate is not None:
            self.on_duplicate(nic, addr)
        return True
