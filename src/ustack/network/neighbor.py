# SPDX-License-Identifier: MIT
"""The neighbor cache shared by ARP and NDP (RFC 826; RFC 4861 section 7.3 and Appendix C).

Entry states (RFC 4861 7.3.2): INCOMPLETE entries hold packets while multicast
(broadcast) requests are retransmitted every RetransTimer, up to
``max_probes``; REACHABLE entries are trusted for ReachableTime after the last
confirmation (kept lazily: no timer runs) and are STALE after it; sending to a
STALE entry moves it to DELAY (7.3.3), and if nothing confirms it within
DELAY_FIRST_PROBE_TIME it goes to PROBE: unicast requests every RetransTimer, up
to ``max_unicast_probes``, and then the entry is removed so that the next packet
resolves afresh. Packets keep flowing to the cached address in STALE, DELAY and
PROBE. A solicited advertisement (ARP: a reply or request for us) or upper-layer
progress (:meth:`NeighborCache.confirm`, RFC 4861 7.3.1) makes it REACHABLE.
"""

from __future__ import annotations

import enum
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

#: RFC 4861 6.3.2: ReachableTime is BaseReachableTime times a random factor in this range
MIN_RANDOM_FACTOR = 0.5
MAX_RANDOM_FACTOR = 1.5


@dataclass
class NeighborConfig:
    reachable_time: float = 30.0  # RFC 4861 REACHABLE_TIME (BaseReachableTime)
    retrans_time: float = 1.0  # RFC 4861 RETRANS_TIMER
    max_probes: int = 3  # MAX_MULTICAST_SOLICIT (ARP: broadcast requests)
    max_unicast_probes: int = 3  # MAX_UNICAST_SOLICIT
    delay_first_probe_time: float = 5.0  # DELAY_FIRST_PROBE_TIME
    max_pending: int = 64  # packets held per unresolved neighbor
    max_entries: int = 1024


class NeighborState(enum.Enum):
    INCOMPLETE = "INCOMPLETE"
    REACHABLE = "REACHABLE"
    STALE = "STALE"
    DELAY = "DELAY"
    PROBE = "PROBE"
    PERMANENT = "PERMANENT"


_REACHABLE = NeighborState.REACHABLE
_STALE = NeighborState.STALE


class NeighborEntry:
    __slots__ = ("addr", "confirmed", "link_addr", "local", "nud", "pending", "probes",
                 "static", "timer")

    def __init__(self, addr: bytes) -> None:
        self.addr = addr
        self.link_addr: bytes | None = None
        self.nud = NeighborState.INCOMPLETE  # REACHABLE decays to STALE lazily: see state_at
        self.confirmed = -1e18
        self.probes = 0
        self.static = False
        self.local: bytes | None = None
        self.pending: deque[PacketBuffer] = deque()
        self.timer: Timer | None = None

    def state_at(self, now: float, reachable_time: float) -> NeighborState:
        if self.nud is NeighborState.REACHABLE and now - self.confirmed > reachable_time:
            return NeighborState.STALE
        return self.nud

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


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
        #: per interface, as a router advertisement may set them (RFC 4861 6.3.4)
        self.base_reachable_time = self.config.reachable_time
        self.retrans_time = self.config.retrans_time
        self.reachable_time = self.base_reachable_time
        self.set_base_reachable_time(self.base_reachable_time)

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[NeighborEntry]:
        return list(self._entries.values())

    def set_base_reachable_time(self, base: float) -> None:
        """RFC 4861 6.3.2/6.3.4: a new BaseReachableTime draws a new random ReachableTime."""
        self.base_reachable_time = base
        factor = self._nic.stack.random.uniform(MIN_RANDOM_FACTOR, MAX_RANDOM_FACTOR)
        self.reachable_time = base * factor

    def state(self, addr: bytes) -> NeighborState | None:
        """The entry's state now (None: no entry), without the side effects of a lookup."""
        entry = self._entries.get(addr)
        if entry is None:
            return None
        if entry.static:
            return NeighborState.PERMANENT
        return entry.state_at(self._clock.now(), self.reachable_time)

    def lookup(self, addr: bytes) -> bytes | None:
        """The link address to send to now. Sending to a STALE entry starts the
        DELAY_FIRST_PROBE_TIME timer (RFC 4861 7.3.3)."""
        entry = self._entries.get(addr)
        if entry is None or entry.link_addr is None:
            return None
        nud = entry.nud
        if nud is _REACHABLE:  # the per-packet path: one clock read, no timer
            if self._clock.now() - entry.confirmed <= self.reachable_time:
                return entry.link_addr
        elif nud is not _STALE:  # DELAY, PROBE, PERMANENT
            return entry.link_addr
        if not entry.static:  # STALE: wait DELAY_FIRST_PROBE_TIME for a confirmation
            entry.nud = NeighborState.DELAY
            entry.cancel_timer()
            entry.timer = self._clock.call_later(self.config.delay_first_probe_time,
                                                 self._delay_expired, entry)
        return entry.link_addr

    def _delay_expired(self, entry: NeighborEntry) -> None:
        """RFC 4861 7.3.3: still unconfirmed after the delay, probe by unicast."""
        entry.timer = None
        if self._entries.get(entry.addr) is not entry or entry.nud is not NeighborState.DELAY:
            return
        entry.nud = NeighborState.PROBE
        entry.probes = 0
        self._probe(entry)

    def _probe(self, entry: NeighborEntry) -> None:
        entry.timer = None
        if self._entries.get(entry.addr) is not entry or entry.nud is not NeighborState.PROBE:
            return
        if entry.probes >= self.config.max_unicast_probes:
            # RFC 4861 7.3.3: no answer to MAX_UNICAST_SOLICIT probes: delete the entry
            del self._entries[entry.addr]
            self._stats.count(f"{self._layer}.neighbor_expired")
            return
        entry.probes += 1
        self._stats.count(f"{self._layer}.neighbor_probe")
        self._resolver.link_address_request(self._nic, entry.addr, entry.local, entry.link_addr)
        entry.timer = self._clock.call_later(self.retrans_time, self._probe, entry)

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
        entry.timer = self._clock.call_later(self.retrans_time, self._solicit, entry)

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
        """Learn ``addr``'s link address (RFC 4861 7.2.3, 7.2.5 and Appendix C); flush
        packets waiting for it. ``confirmed``: a solicited advertisement (reachable);
        ``override``: a different address replaces the cached one."""
        entry = self._entries.get(addr)
        if entry is None:
            if not create:
                return
            entry = self._new_entry(addr)
        if entry.static:
            return
        now = self._clock.now()
        incomplete = entry.link_addr is None
        changed = entry.link_addr != link_addr
        if not incomplete and changed and not override:
            # 7.2.5: keep the cached address; a REACHABLE entry becomes STALE
            if entry.state_at(now, self.reachable_time) is NeighborState.REACHABLE:
                entry.nud = NeighborState.STALE
            return
        entry.link_addr = link_addr
        if confirmed:
            self._make_reachable(entry, now)
        elif changed:
            entry.nud = NeighborState.STALE  # unsolicited information (7.2.3, 7.2.5)
            entry.cancel_timer()
            entry.probes = 0
        if incomplete:
            entry.cancel_timer()
            entry.probes = 0
            pending, entry.pending = entry.pending, deque()
            send = self._nic.send_resolved
            for pkt in pending:
                send(pkt, link_addr)

    def _make_reachable(self, entry: NeighborEntry, now: float) -> None:
        entry.nud = NeighborState.REACHABLE
        entry.confirmed = now
        entry.probes = 0
        entry.cancel_timer()

    def confirm(self, addr: bytes) -> bool:
        """Upper-layer reachability confirmation (RFC 4861 7.3.1: e.g. TCP forward
        progress): a resolved entry becomes REACHABLE. False when there is none."""
        entry = self._entries.get(addr)
        if entry is None or entry.link_addr is None or entry.static:
            return False
        self._make_reachable(entry, self._clock.now())
        return True

    def add_static(self, addr: bytes, link_addr: bytes) -> None:
        self.update(addr, link_addr, confirmed=True)
        entry = self._entries[addr]
        entry.static = True
        entry.nud = NeighborState.PERMANENT

    def remove(self, addr: bytes) -> None:
        entry = self._entries.pop(addr, None)
        if entry is not None:
            entry.cancel_timer()

    def has(self, addr: bytes) -> bool:
        return addr in self._entries

    def clear(self) -> None:
        for entry in self._entries.values():
            entry.cancel_timer()
        self._entries.clear()
