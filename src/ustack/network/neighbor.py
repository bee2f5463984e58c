# SPDX-License-Identifier: MIT
"""The neighbor cache shared by ARP and NDP (RFC 826; RFC 4861 section 7.3, simplified).

States are kept lazily: an entry without a link address is INCOMPLETE and holds
packets while requests are retransmitted; an entry with one is REACHABLE until
``reachable_time`` after its last confirmation, then STALE: still used, but each
use past that probes it by unicast, and it is forgotten after ``max_probes``
unanswered probes so that the next packet resolves afresh.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.clock import Clock, Timer
from ustack.contracts import LinkAddressResolver
from ustack.stats import Stats
from ustack.wire.errors import DropReason

if TYPE_CHECKING:
    from ustack.nic import NIC


@dataclass
class NeighborConfig:
    reachable_time: float = 30.0  # RFC 4861 REACHABLE_TIME
    retrans_time: float = 1.0  # RFC 4861 RETRANS_TIMER
    max_probes: int = 3  # MAX_MULTICAST_SOLICIT / MAX_UNICAST_SOLICIT
    max_pending: int = 64  # packets held per unresolved neighbor
    max_entries: int = 1024


class NeighborEntry:
    __slots__ = ("addr", "confirmed", "link_addr", "local", "pending", "probed", "probes",
                 "static", "timer")

    def __init__(self, addr: bytes) -> None:
        self.addr = addr
        self.link_addr: bytes | None = None
        self.confirmed = -1e18
        self.probed = -1e18
        self.probes = 0
        self.static = False
        self.local: bytes | None = None
        self.pending: deque[PacketBuffer] = deque()
        self.timer: Timer | None = None

    @property
    def state(self) -> str:
        return "PERMANENT" if self.static else "INCOMPLETE" if self.link_addr is None else "VALID"


FailureHandler = Callable[[PacketBuffer], None]


class NeighborCache:
    def __init__(self, nic: NIC, resolver: LinkAddressResolver, clock: Clock, stats: Stats,
                 layer: str, config: NeighborConfig | None = None) -> None:
        self._nic = nic
        self._resolver = resolver
        self._clock = clock
        self._stats = stats
        self._layer = layer
        self.config = config or NeighborConfig()
        self._entries: dict[bytes, NeighborEntry] = {}
        self.on_failure: FailureHandler | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[NeighborEntry]:
        return list(self._entries.values())

    def lookup(self, addr: bytes) -> bytes | None:
        """The link address to use now, probing a stale entry on the way."""
        entry = self._entries.get(addr)
        if entry is None or entry.link_addr is None:
            return None
        if entry.static:
            return entry.link_addr
        now = self._clock.now()
        cfg = self.config
        if now - entry.confirmed > cfg.reachable_time and now - entry.probed >= cfg.retrans_time:
            if entry.probes >= cfg.max_probes:
                del self._entries[addr]
                self._stats.count(f"{self._layer}.neighbor_expired")
                return None
            entry.probes += 1
            entry.probed = now
            self._resolver.link_address_request(self._nic, addr, entry.local, entry.link_addr)
        return entry.link_addr

    def resolve(self, addr: bytes, local: bytes | None, pkt: PacketBuffer) -> None:
        """Hold ``pkt`` until ``addr`` is resolved (call after :meth:`lookup` found nothing)."""
        entry = self._entries.get(addr)
        if entry is None:
            entry = self._new_entry(addr)
        if entry.link_addr is not None:
            self._nic.send_resolved(pkt, entry.link_addr)
            return
        if len(entry.pending) >= self.config.max_pending:
            self._stats.drop(self._layer, DropReason.QUEUE_FULL)
            entry.pending.popleft()
        entry.pending.append(pkt)
        entry.local = local
        if entry.timer is None:
            self._solicit(entry)

    def _new_entry(self, addr: bytes) -> NeighborEntry:
        if len(self._entries) >= self.config.max_entries:
            for key, old in self._entries.items():  # evict the oldest dynamic entry
                if not old.static and old.timer is None:
                    del self._entries[key]
                    break
        entry = self._entries[addr] = NeighborEntry(addr)
        return entry

    def _solicit(self, entry: NeighborEntry) -> None:
        if self._entries.get(entry.addr) is not entry or entry.link_addr is not None:
            entry.timer = None
            return
        if entry.probes >= self.config.max_probes:
            self._fail(entry)
            return
        entry.probes += 1
        self._resolver.link_address_request(self._nic, entry.addr, entry.local, None)
        entry.timer = self._clock.call_later(self.config.retrans_time, self._solicit, entry)

    def _fail(self, entry: NeighborEntry) -> None:
        entry.timer = None
        del self._entries[entry.addr]
        self._stats.count(f"{self._layer}.resolution_failed")
        while entry.pending:
            pkt = entry.pending.popleft()
            self._stats.drop(self._layer, DropReason.UNRESOLVED)
            if self.on_failure is not None:
                self.on_failure(pkt)

    def update(self, addr: bytes, link_addr: bytes, *, confirmed: bool, override: bool = True,
               create: bool = True) -> None:
        """Learn ``addr``'s link address; flush packets waiting for it."""
        entry = self._entries.get(addr)
        if entry is None:
            if not create:
                return
            entry = self._new_entry(addr)
        if entry.static:
            return
        if entry.link_addr is not None and entry.link_addr != link_addr and not override:
            return
        changed = entry.link_addr != link_addr
        entry.link_addr = link_addr
        if confirmed:
            entry.confirmed = self._clock.now()
            entry.probes = 0
        elif changed:
            entry.confirmed = -1e18  # STALE: RFC 4861 7.2.3, unsolicited information
            entry.probes = 0
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
            entry.probes = 0
        pending, entry.pending = entry.pending, deque()
        send = self._nic.send_resolved
        for pkt in pending:
            send(pkt, link_addr)

    def add_static(self, addr: bytes, link_addr: bytes) -> None:
        self.update(addr, link_addr, confirmed=True)
        self._entries[addr].static = True

    def remove(self, addr: bytes) -> None:
        entry = self._entries.pop(addr, None)
        if entry is not None and entry.timer is not None:
            entry.timer.cancel()

    def has(self, addr: bytes) -> bool:
        return addr in self._entries

    def clear(self) -> None:
        for entry in self._entries.values():
            if entry.timer is not None:
                entry.timer.cancel()
        self._entries.clear()
