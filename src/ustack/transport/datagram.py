# SPDX-License-Identifier: MIT
"""What UDP and ICMP echo endpoints share: binding, connecting, a bounded receive queue,
ICMP errors turned into socket errors, and readiness for waiters."""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.contracts import ControlKind, ControlMessage
from ustack.demux import Binding
from ustack.route import Route
from ustack.waiter import ERROR, READABLE, WRITABLE, WaiterQueue
from ustack.wire import ethernet
from ustack.wire import ipv4 as ipv4_wire
from ustack.wire import ipv6 as ipv6_wire
from ustack.wire.errors import DropReason

if TYPE_CHECKING:
    from ustack.nic import NIC
    from ustack.stack import Stack

DEFAULT_BUFFER = 212992  # Linux net.core.rmem_default / wmem_default

#: RFC 1122 4.1.3.3 (UDP) and Linux: how ICMP errors surface as errno on connected sockets
CONTROL_ERRNO = {
    ControlKind.PORT_UNREACHABLE: errno.ECONNREFUSED,
    ControlKind.PROTOCOL_UNREACHABLE: errno.ENOPROTOOPT,
    ControlKind.HOST_UNREACHABLE: errno.EHOSTUNREACH,
    ControlKind.NET_UNREACHABLE: errno.ENETUNREACH,
    ControlKind.ADMIN_PROHIBITED: errno.EACCES,
    ControlKind.TTL_EXCEEDED: errno.EHOSTUNREACH,
    ControlKind.PARAMETER_PROBLEM: errno.EPROTO,
}

Datagram = tuple[bytes, tuple[bytes, int]]


class DatagramEndpoint:
    """A message endpoint on one transport protocol; subclasses build and parse headers."""

    protocol_number = 0
    layer = "datagram"

    def __init__(self, stack: Stack, size: int) -> None:
        self.stack = stack
        self.size = size
        self.table = stack.demux[self.protocol_number]
        self.binding: Binding | None = None
        self.local_addr = bytes(size)
        self.local_port = 0
        self.remote: tuple[bytes, int] | None = None
        self.route: Route | None = None
        self.queue: deque[Datagram] = deque()
        self.queued_bytes = 0
        self.rcvbuf = DEFAULT_BUFFER
        self.sndbuf = DEFAULT_BUFFER
        self.error = 0
        self.waiters = WaiterQueue()
        self.closed = False
        self.reuse = False
        self.reuse_port = False
        self.broadcast = False
        # multicast (Linux ip(7) / ipv6(7) defaults): TTL 1, looped back, interface by route
        self.multicast_ttl = 1
        self.multicast_loop = True
        self.multicast_nic = 0  # IP(V6)_MULTICAST_IF: a NIC id, 0 for the route's
        self.multicast_source: bytes | None = None  # IP_MULTICAST_IF by address
        self.multicast_all = True  # IP_MULTICAST_ALL: every group the host joined
        #: the groups this endpoint joined: (nic id, group), left again on close
        self.memberships: set[tuple[int, bytes]] = set()
        self.ttl = 0
        self.tos = 0
        #: when set, datagrams are handed here instead of queued (asyncio transports)
        self.on_datagram: Callable[[bytes, tuple[bytes, int]], None] | None = None
        self.on_error: Callable[[int], None] | None = None
        #: when set, datagrams are handed here with their packet, which tells the NIC, the
        #: destination and the link source (like IP_PKTINFO; DHCP servers need them)
        self.on_packet: Callable[[bytes, int, PacketBuffer], None] | None = None

    # --- binding and connecting -------------------------------------------------------------

    def bind(self, addr: bytes, port: int) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "Bad file descriptor")
        if self.binding is not None:
            raise OSError(errno.EINVAL, "Invalid argument")
        if any(addr) and not self.stack.is_local_address(addr) and addr != b"\xff" * 4 \
                and not is_multicast(addr):  # a group address: Linux lets UDP bind it
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        self.binding = self.table.bind(self, self.size, addr, port, self.reuse,
                                       self.reuse_port)
        self.local_addr = self.binding.local_addr
        self.local_port = self.binding.local_port

    def ensure_bound(self) -> None:
        if self.binding is None:
            self.bind(bytes(self.size), 0)

    def connect(self, addr: bytes, port: int) -> None:
        if not any(addr) and port == 0:
            self.disconnect()
            return
        local = self.local_addr if any(self.local_addr) else None
        route = (self._multicast_route(addr, local) if is_multicast(addr)
                 else self.stack.find_route(addr, local))
        self.ensure_bound()
        assert self.binding is not None
        self.table.connect(self.binding, route.local_addr, addr, port)
        self.local_addr = route.local_addr
        self.remote = (addr, port)
        self.route = route
        self.error = 0

    def attach_connected(self, local: bytes, lport: int, remote: bytes, rport: int) -> None:
        """Register on an exact 4-tuple without claiming the port: the forwarder's flows,
        which speak for addresses that are not ours (the NIC must allow spoofing)."""
        route = self.stack.find_route(remote, local)
        self.binding = self.table.add_connected(self, local, lport, remote, rport)
        self.local_addr, self.local_port = local, lport
        self.remote = (remote, rport)
        self.route = route

    def disconnect(self) -> None:
        """connect() to AF_UNSPEC: forget the peer, keep the port (Linux semantics)."""
        if self.binding is None:
            return
        port = self.local_port
        self.table.unbind(self.binding)
        self.binding = None
        self.remote = None
        self.route = None
        self.binding = self.table.bind(self, self.size, bytes(self.size), port, True)
        self.local_addr = bytes(self.size)

    # --- sending ------------------------------------------------------------------------------

    def sendto(self, data: bytes, dest: tuple[bytes, int] | None) -> int:
        if self.closed:
            raise OSError(errno.EBADF, "Bad file descriptor")
        self._raise_error()
        if dest is None:
            if self.remote is None or self.route is None:
                raise OSError(errno.EDESTADDRREQ, "Destination address required")
            route, (addr, port) = self.route, self.remote
        else:
            addr, port = dest
            if self.remote is not None and dest == self.remote and self.route is not None:
                route = self.route
            else:
                local = self.local_addr if any(self.local_addr) else None
                if is_multicast(addr):
                    route = self._multicast_route(addr, local)
                else:
                    route = self.stack.find_route(addr, local)
                if route.link_addr == ethernet.BROADCAST and not self.broadcast:
                    raise OSError(errno.EACCES, "Permission denied")  # needs SO_BROADCAST
        self.ensure_bound()
        self.send_datagram(route, data, port)
        return len(data)

    def send_datagram(self, route: Route, data: bytes, port: int) -> None:
        raise NotImplementedError

    # --- multicast (ip(7) IP_ADD_MEMBERSHIP ..., ipv6(7) IPV6_JOIN_GROUP ...) -------------------

    def _multicast_route(self, group: bytes, local: bytes | None) -> Route:
        if local is None and self.multicast_source is not None:
            local = self.multicast_source
        return self.stack.find_route(group, local, self.multicast_nic or None)

    def _group_nic(self, group: bytes, nic_id: int) -> NIC:
        if len(group) != self.size or not is_multicast(group):
            raise OSError(errno.EINVAL, "Invalid argument")
        if nic_id:
            nic = self.stack.nics.get(nic_id)
            if nic is None:
                raise OSError(errno.ENODEV, "No such device")
            return nic
        try:
            return self.stack.find_route(group).nic  # Linux: the interface of the route
        except OSError:
            raise OSError(errno.ENODEV, "No such device") from None

    def join_group(self, group: bytes, nic_id: int = 0) -> None:
        nic = self._group_nic(group, nic_id)
        key = (nic.id, group)
        if key in self.memberships:
            raise OSError(errno.EADDRINUSE, "Address already in use")  # as Linux
        self.stack.join_group(nic, group)
        self.memberships.add(key)

    def leave_group(self, group: bytes, nic_id: int = 0) -> None:
        nic = self._group_nic(group, nic_id)
        key = (nic.id, group)
        if key not in self.memberships:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        self.memberships.discard(key)
        self.stack.leave_group(nic, group)

    def wants_multicast(self, group: bytes, nic_id: int) -> bool:
        """IP_MULTICAST_ALL (on by default): any group the host joined, else its own."""
        return self.multicast_all or (nic_id, group) in self.memberships

    def _drop_memberships(self) -> None:
        for nic_id, group in sorted(self.memberships):
            nic = self.stack.nics.get(nic_id)
            if nic is not None:
                self.stack.leave_group(nic, group)
        self.memberships.clear()

    def handle_packet(self, pkt: PacketBuffer) -> None:
        raise NotImplementedError

    # --- receiving ------------------------------------------------------------------------------

    def deliver(self, data: bytes, source: tuple[bytes, int]) -> None:
        if self.on_datagram is not None:
            self.on_datagram(data, source)
            return
        if self.queued_bytes + len(data) > self.rcvbuf:
            self.stack.stats.drop(self.layer, DropReason.RCVBUF_FULL)
            return
        self.queue.append((data, source))
        self.queued_bytes += len(data)
        self.waiters.notify(READABLE)

    def recvfrom(self, peek: bool = False) -> Datagram:
        """The next datagram; raises BlockingIOError when there is none."""
        if self.queue:
            item = self.queue[0] if peek else self.queue.popleft()
            if not peek:
                self.queued_bytes -= len(item[0])
            return item
        self._raise_error()
        if self.closed:
            raise OSError(errno.EBADF, "Bad file descriptor")
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    def handle_control(self, error: ControlMessage, pkt: PacketBuffer) -> None:
        """Only connected endpoints hear about ICMP errors (Linux without IP_RECVERR)."""
        if self.remote is None or error.remote_addr != self.remote[0]:
            self.stack.stats.count(f"{self.layer}.icmp_error_ignored")
            return
        code = CONTROL_ERRNO.get(error.kind)
        if code is None:
            return
        self.error = code
        self.stack.stats.count(f"{self.layer}.icmp_error")
        if self.on_error is not None:
            self.on_error(code)
        self.waiters.notify(ERROR)

    def _raise_error(self) -> None:
        if self.error:
            code, self.error = self.error, 0
            raise OSError(code, os.strerror(code))

    def take_error(self) -> int:
        code, self.error = self.error, 0
        return code

    def readiness(self) -> int:
        mask = WRITABLE
        if self.queue or self.closed:
            mask |= READABLE
        if self.error:
            mask |= ERROR
        return mask

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._drop_memberships()
        if self.binding is not None:
            self.table.unbind(self.binding)
            self.binding = None
        self.queue.clear()
        self.queued_bytes = 0
        self.waiters.notify(READABLE | WRITABLE)
        self.waiters.clear()



def is_multicast(addr: bytes) -> bool:
    return ipv4_wire.is_multicast(addr) if len(addr) == 4 else ipv6_wire.is_multicast(addr)
