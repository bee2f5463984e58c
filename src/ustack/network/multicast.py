# SPDX-License-Identifier: MIT
"""The host side of multicast group management, shared by IGMP and MLD.

IGMPv3 (RFC 3376 section 5) and MLDv2 (RFC 3810 section 6) are the same state
machine over different bytes, and IGMPv1/v2 (RFC 1112, RFC 2236) and MLDv1
(RFC 2710) are its older-version compatibility modes (RFC 3376 7.2.1, RFC 3810
8.2.1). This module keeps, per NIC, the groups joined (reference counted, in
EXCLUDE({}) mode: any-source joins), the compatibility mode with its Older
Version Querier Present timers, and the report timers. The protocol modules
(:mod:`ustack.network.igmp`, :mod:`ustack.network.mld`) parse queries into
:class:`QueryInfo` and turn the records this core asks for into packets.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ustack.buffer import PacketBuffer
from ustack.clock import Timer
from ustack.contracts import LinkCapabilities
from ustack.route import Route
from ustack.wire import group_records
from ustack.wire.errors import DropReason
from ustack.wire.group_records import (
    CHANGE_TO_EXCLUDE,
    CHANGE_TO_INCLUDE,
    MODE_IS_EXCLUDE,
    MODE_IS_INCLUDE,
)
from ustack.wire.proto import EtherType

if TYPE_CHECKING:
    from ustack.nic import NIC
    from ustack.stack import Stack

ROBUSTNESS = 2  # RFC 3376 8.1 / RFC 3810 9.1
QUERY_INTERVAL = 125.0  # 8.2 / 9.2
QUERY_RESPONSE_INTERVAL = 10.0  # 8.3 / 9.3


class QueryInfo(NamedTuple):
    """A query as the state machine sees it, whatever its version and family."""

    version: int
    max_resp: float  # seconds
    group: bytes  # all zeros: a general query
    qrv: int = 0
    qqi: float = 0.0
    sources: tuple[bytes, ...] = ()


#: a record the state machine asks to send: the wire's group record (no aux data)
Record = group_records.GroupRecord


class Messenger(Protocol):
    """What IGMP or MLD does for the core: the bytes and the sending."""

    name: str
    newest: int  # 3 for IGMP, 2 for MLD

    def reportable(self, group: bytes) -> bool: ...

    def unsolicited_interval(self, version: int) -> float: ...

    def has_leave(self, version: int) -> bool: ...

    def send_records(self, nic: NIC, records: list[Record]) -> None:
        """A newest-version report (split to fit the MTU)."""
        ...

    def send_old_report(self, nic: NIC, version: int, group: bytes) -> None: ...

    def send_leave(self, nic: NIC, version: int, group: bytes) -> None: ...


@dataclass(eq=False)
class Group:
    group: bytes
    refs: int = 0
    #: a pending answer to a query about this group (old modes: any query)
    timer: Timer | None = None
    #: sources of pending group-and-source queries; None: the whole group was asked for
    query_sources: set[bytes] | None = None
    #: IGMPv2 / MLDv1: we sent the last report, so we send the leave (RFC 2236 3)
    last_reporter: bool = False
    #: a state change still to be retransmitted (RFC 3376 5.1): its record type
    change: int = 0
    retransmits: int = 0


@dataclass(eq=False)
class Interface:
    nic: NIC
    groups: dict[bytes, Group] = field(default_factory=dict)
    #: Older Version Querier Present timers by version (RFC 3376 7.2.1)
    older: dict[int, Timer] = field(default_factory=dict)
    general: Timer | None = None
    changes: Timer | None = None
    robustness: int = ROBUSTNESS
    query_interval: float = QUERY_INTERVAL
    query_response_interval: float = QUERY_RESPONSE_INTERVAL


class GroupManager:
    """One per protocol (IGMP, MLD) per stack; state per NIC."""

    def __init__(self, stack: Stack, messenger: Messenger) -> None:
        self.stack = stack
        self.messenger = messenger
        self.name = messenger.name
        self._interfaces: dict[int, Interface] = {}
        # report delays draw from a stream of their own, so that joining groups does not
        # shift the stack's (ports, sequence numbers) for a given seed
        self.random = random.Random(None if stack.seed is None
                                    else f"{stack.seed}-{messenger.name}")

    # --- queries from the rest of the stack ----------------------------------------------------

    def interface(self, nic: NIC) -> Interface:
        iface = self._interfaces.get(nic.id)
        if iface is None or iface.nic is not nic:
            iface = self._interfaces[nic.id] = Interface(nic)
        return iface

    def mode(self, nic: NIC) -> int:
        """Host Compatibility Mode: the oldest version whose querier is still present."""
        iface = self.interface(nic)
        active = [v for v, t in iface.older.items() if t.active]
        return min(active) if active else self.messenger.newest

    def is_member(self, nic: NIC, group: bytes) -> bool:
        entry = self.interface(nic).groups.get(group)
        return entry is not None and entry.refs > 0

    def memberships(self, nic: NIC) -> dict[bytes, int]:
        return {g: e.refs for g, e in self.interface(nic).groups.items() if e.refs > 0}

    def _count(self, event: str) -> None:
        self.stack.stats.count(f"{self.name}.{event}")

    def _sends(self, nic: NIC) -> bool:
        return nic.id in self.stack.nics and not (
            nic.link.capabilities & LinkCapabilities.LOOPBACK)

    # --- joining and leaving (RFC 3376 5.1 / RFC 3810 6.1) ---------------------------------------

    def join(self, nic: NIC, group: bytes) -> None:
        iface = self.interface(nic)
        entry = iface.groups.get(group)
        if entry is not None and entry.refs > 0:
            entry.refs += 1
            return
        if entry is None:
            entry = iface.groups[group] = Group(group)
        entry.refs = 1
        nic.join_group(group)
        self._count("joins")
        if self.messenger.reportable(group) and self._sends(nic):
            self._state_change(iface, entry, CHANGE_TO_EXCLUDE)

    def leave(self, nic: NIC, group: bytes) -> bool:
        """Drop one reference; the last one leaves the group. False if not a member."""
        iface = self.interface(nic)
        entry = iface.groups.get(group)
        if entry is None or entry.refs <= 0:
            return False
        entry.refs -= 1
        if entry.refs:
            return True
        nic.leave_group(group)
        self._count("leaves")
        self._cancel(entry)
        if self.messenger.reportable(group) and self._sends(nic):
            self._state_change(iface, entry, CHANGE_TO_INCLUDE)
        if not entry.retransmits:
            iface.groups.pop(group, None)
        return True

    def _state_change(self, iface: Interface, entry: Group, change: int) -> None:
        mode = self.mode(iface.nic)
        messenger = self.messenger
        if mode == messenger.newest:
            # RFC 3376 5.1: send now, then [Robustness Variable] - 1 more times
            messenger.send_records(iface.nic, [Record(change, entry.group)])
            self._count("tx_state_change")
            entry.change = change
            entry.retransmits = iface.robustness - 1
        elif change == CHANGE_TO_EXCLUDE:
            # RFC 2236 3 / RFC 2710 4: report now, and repeat it after a short delay
            messenger.send_old_report(iface.nic, mode, entry.group)
            self._count(f"tx_v{mode}_report")
            entry.last_reporter = True
            entry.change = change
            entry.retransmits = iface.robustness - 1
        else:
            if entry.last_reporter and messenger.has_leave(mode):
                messenger.send_leave(iface.nic, mode, entry.group)
                self._count("tx_leave")
            entry.change = 0
            entry.retransmits = 0
        if entry.retransmits and (iface.changes is None or not iface.changes.active):
            self._schedule_changes(iface, mode)

    def _schedule_changes(self, iface: Interface, mode: int) -> None:
        delay = self.random.uniform(0, self.messenger.unsolicited_interval(mode))
        iface.changes = self.stack.clock.call_later(delay, self._retransmit, iface)

    def _retransmit(self, iface: Interface) -> None:
        iface.changes = None
        if iface.nic.id not in self.stack.nics:
            return
        mode = self.mode(iface.nic)
        pending = [e for e in list(iface.groups.values()) if e.retransmits > 0]
        if mode == self.messenger.newest:
            records = [Record(e.change, e.group) for e in pending]
            if records:
                self.messenger.send_records(iface.nic, records)
                self._count("tx_state_change")
        else:
            for entry in pending:
                if entry.change == CHANGE_TO_EXCLUDE and entry.refs > 0:
                    self.messenger.send_old_report(iface.nic, mode, entry.group)
                    self._count(f"tx_v{mode}_report")
        for entry in pending:
            entry.retransmits -= 1
            if not entry.retransmits and entry.refs <= 0:
                iface.groups.pop(entry.group, None)
        if any(e.retransmits > 0 for e in iface.groups.values()):
            self._schedule_changes(iface, mode)

    # --- queries (RFC 3376 5.2 / RFC 3810 6.2; old modes: RFC 2236 3, RFC 2710 4) -------------

    def handle_query(self, nic: NIC, query: QueryInfo) -> None:
        iface = self.interface(nic)
        self._count(f"rx_v{query.version}_query")
        newest = self.messenger.newest
        if query.version < newest:
            self._older_querier(iface, query.version)
        elif query.qrv or query.qqi:
            # RFC 3376 4.1.6 / 4.1.7: adopt the querier's robustness and interval
            iface.robustness = query.qrv or iface.robustness
            iface.query_interval = query.qqi or iface.query_interval
        mode = self.mode(nic)
        delay = self.random.uniform(0, max(query.max_resp, 0.0))
        now = self.stack.clock.now()
        general = not any(query.group)
        if mode == newest:
            if iface.general is not None and iface.general.active and iface.general.when <= (
                    now + delay):
                return  # rule 1/2: a general answer is already due sooner
            if general:
                if iface.general is not None:
                    iface.general.cancel()
                iface.general = self.stack.clock.call_later(delay, self._answer_general, iface)
                return
            entry = iface.groups.get(query.group)
            if entry is None or entry.refs <= 0:
                return
            pending = entry.timer is not None and entry.timer.active
            if not pending:
                entry.query_sources = set(query.sources) if query.sources else None
            elif entry.query_sources is not None and query.sources:
                entry.query_sources |= set(query.sources)
            else:
                entry.query_sources = None  # rule 3: whole-group answer
            self._arm_group(iface, entry, delay, now)
            return
        targets = [e for e in iface.groups.values()
                   if e.refs > 0 and (general or e.group == query.group)
                   and self.messenger.reportable(e.group)]
        for entry in targets:
            self._arm_group(iface, entry, delay, now)

    def _arm_group(self, iface: Interface, entry: Group, delay: float, now: float) -> None:
        """Reset the timer only if the new delay is sooner (RFC 2236 3, RFC 3376 5.2)."""
        if entry.timer is not None and entry.timer.active:
            if entry.timer.when <= now + delay:
                return
            entry.timer.cancel()
        entry.timer = self.stack.clock.call_later(delay, self._answer_group, iface, entry)

    def _answer_general(self, iface: Interface) -> None:
        iface.general = None
        if not self._sends(iface.nic) or self.mode(iface.nic) != self.messenger.newest:
            return
        records = [Record(MODE_IS_EXCLUDE, e.group) for e in iface.groups.values()
                   if e.refs > 0 and self.messenger.reportable(e.group)]
        if records:
            self.messenger.send_records(iface.nic, records)
            self._count("tx_current_state")

    def _answer_group(self, iface: Interface, entry: Group) -> None:
        entry.timer = None
        if entry.refs <= 0 or not self._sends(iface.nic):
            return
        mode = self.mode(iface.nic)
        if mode == self.messenger.newest:
            sources, entry.query_sources = entry.query_sources, None
            # 5.2: in EXCLUDE({}) every asked-for source is wanted: IS_IN(asked sources)
            record = (Record(MODE_IS_INCLUDE, entry.group, tuple(sorted(sources))) if sources
                      else Record(MODE_IS_EXCLUDE, entry.group))
            self.messenger.send_records(iface.nic, [record])
            self._count("tx_current_state")
            return
        self.messenger.send_old_report(iface.nic, mode, entry.group)
        self._count(f"tx_v{mode}_report")
        entry.last_reporter = True

    def handle_report(self, nic: NIC, group: bytes) -> None:
        """Another host's v1/v2 (MLDv1) report: suppress ours (RFC 2236 3, RFC 2710 4)."""
        self._count("rx_report")
        entry = self.interface(nic).groups.get(group)
        if entry is None or self.mode(nic) == self.messenger.newest:
            return
        if entry.timer is not None and entry.timer.active:
            entry.timer.cancel()
            entry.timer = None
            self._count("report_suppressed")
        entry.last_reporter = False

    # --- compatibility modes (RFC 3376 7.2.1 / RFC 3810 8.2.1) ---------------------------------

    def _older_querier(self, iface: Interface, version: int) -> None:
        before = self.mode(iface.nic)
        old = iface.older.get(version)
        if old is not None:
            old.cancel()
        # RFC 3376 8.12 / RFC 3810 9.12: Older Version Querier Present Timeout
        timeout = iface.robustness * iface.query_interval + iface.query_response_interval
        iface.older[version] = self.stack.clock.call_later(timeout, self._older_gone, iface,
                                                           version)
        if self.mode(iface.nic) != before:
            self._mode_changed(iface)

    def _older_gone(self, iface: Interface, version: int) -> None:
        before = min([v for v, t in iface.older.items() if t.active] + [version])
        iface.older.pop(version, None)
        if self.mode(iface.nic) != before:
            self._mode_changed(iface)

    def _mode_changed(self, iface: Interface) -> None:
        """7.2.1: cancel all pending response and retransmission timers."""
        self._count(f"mode_v{self.mode(iface.nic)}")
        for timer in (iface.general, iface.changes):
            if timer is not None:
                timer.cancel()
        iface.general = iface.changes = None
        for group, entry in list(iface.groups.items()):
            self._cancel(entry)
            entry.retransmits = 0
            if entry.refs <= 0:
                del iface.groups[group]

    @staticmethod
    def _cancel(entry: Group) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        entry.query_sources = None

    def nic_removed(self, nic_id: int) -> None:
        iface = self._interfaces.pop(nic_id, None)
        if iface is None:
            return
        for timer in (iface.general, iface.changes, *iface.older.values()):
            if timer is not None:
                timer.cancel()
        for entry in iface.groups.values():
            self._cancel(entry)


class MembershipProtocol:
    """What IGMP and MLD do alike around the state machine: the GroupMembershipProtocol
    calls, checking a query's destination, and splitting records into reports. A
    subclass names its family's groups and sizes, and builds and sends the packets."""

    name: str
    newest: int  # 3 for IGMP, 2 for MLD
    address_size: int
    #: all-systems (224.0.0.1) or all-nodes (ff02::1): joined everywhere, never reported
    all_hosts: bytes
    #: the IP header (and Router Alert) in front of every report
    ip_header_len: int

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.groups = GroupManager(stack, self)

    # --- GroupMembershipProtocol ---------------------------------------------------------------

    def join(self, nic: NIC, group: bytes) -> None:
        self.groups.join(nic, group)

    def leave(self, nic: NIC, group: bytes) -> bool:
        return self.groups.leave(nic, group)

    def nic_enabled(self, nic: NIC) -> None:
        """RFC 1112 7.2 / RFC 2236 6 / RFC 4861 7.2.1: all-hosts on every interface."""
        self.groups.join(nic, self.all_hosts)

    def nic_removed(self, nic_id: int) -> None:
        self.groups.nic_removed(nic_id)

    # --- receiving -----------------------------------------------------------------------------

    def handle_query(self, nic: NIC, query: group_records.Query, dst: bytes) -> bool:
        """RFC 3376 4.1.12 / RFC 3810 5.1.15: general queries go to all-hosts, group
        queries to the group (or all-hosts); others are dropped (False)."""
        if (query.is_general and dst != self.all_hosts) or (
                not query.is_general and dst not in (query.group, self.all_hosts)):
            self.stack.stats.drop(self.name, DropReason.BAD_ADDRESS)
            return False
        self.groups.handle_query(nic, QueryInfo(query.version, query.max_resp, query.group,
                                                query.qrv, query.qqi, query.sources))
        return True

    # --- Messenger -----------------------------------------------------------------------------

    def send_records(self, nic: NIC, records: list[Record]) -> None:
        """RFC 3376 4.2.16 / RFC 3810 5.2.15: as many reports as the MTU needs."""
        room = nic.link.mtu - self.ip_header_len
        for batch in group_records.split_records(records, room, self.address_size):
            self.send_report(nic, batch)
            self.stack.stats.count(f"{self.name}.tx_v{self.newest}_report")

    # --- what each family says for itself ------------------------------------------------------

    def reportable(self, group: bytes) -> bool:
        raise NotImplementedError

    def unsolicited_interval(self, version: int) -> float:
        raise NotImplementedError

    def has_leave(self, version: int) -> bool:
        raise NotImplementedError

    def send_report(self, nic: NIC, records: list[Record]) -> None:
        """One newest-version report holding ``records``."""
        raise NotImplementedError

    def send_old_report(self, nic: NIC, version: int, group: bytes) -> None:
        raise NotImplementedError

    def send_leave(self, nic: NIC, version: int, group: bytes) -> None:
        raise NotImplementedError

    # --- sending ---------------------------------------------------------------------------------

    def _write(self, nic: NIC, ethertype: EtherType, src: bytes, dst: bytes, link_addr: bytes,
               build: Callable[[], bytes]) -> None:
        """Send the packet ``build`` makes to ``dst`` on its group MAC, without routing
        (RFC 3376 4 / RFC 3810 5: link-local, TTL 1); nothing without an IP endpoint."""
        ep = nic.endpoints.get(ethertype)
        if ep is None:
            return
        packet = build()
        route = Route(nic, ep, ethertype, src, dst, dst, link_addr=link_addr)
        nic.write_packet(route, PacketBuffer(nic.link.max_header_length, packet))
        self.stack.stats.count(f"{self.name}.tx")
