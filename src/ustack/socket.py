# SPDX-License-Identifier: MIT
"""BSD-like socket objects on a ustack Stack, in the shape of Python's ``socket.socket``.

Blocking calls work from any thread while the stack runs on its own loop; on a
virtual clock (tests) a blocking call advances simulated time until it can
complete. There is no file descriptor: wait with timeouts, ``ustack.aio``, or
readiness callbacks.
"""

from __future__ import annotations

import errno
import socket as _socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ustack.addr import family_size, format_sockaddr, parse_sockaddr
from ustack.bridge import wait_for
from ustack.transport.datagram import DatagramEndpoint
from ustack.waiter import READABLE, WRITABLE, Notify, Waiter
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.stack import Stack

T = TypeVar("T")
_Buffer = bytes | bytearray | memoryview
_MSG_DONTWAIT = int(_socket.MSG_DONTWAIT)
_MSG_PEEK = int(_socket.MSG_PEEK)


class Socket:
    """What every ustack socket shares: timeouts, the thread bridge, options, closing."""

    def __init__(self, stack: Stack, family: int, type: int, proto: int) -> None:
        self._stack = stack
        self.family = _socket.AddressFamily(family)
        self.type = _socket.SocketKind(type)
        self.proto = proto
        self._size = family_size(family)
        self._timeout: float | None = None
        self._closed = False

    # --- blocking mode ----------------------------------------------------------------------

    def settimeout(self, value: float | None) -> None:
        if value is not None and value < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return self._stack.call(fn, *args)

    def _wait(self, attempt: Callable[[], T], mask: int) -> T:
        return wait_for(self._stack.clock, attempt, self._endpoint.waiters, mask, self._timeout)

    @property
    def _endpoint(self) -> Any:
        raise NotImplementedError

    # --- readiness without a file descriptor ------------------------------------------------

    def readiness(self) -> int:
        """poll(2)-style mask of what would not block now (ustack.waiter.READABLE, ...)."""
        return self._call(self._endpoint.readiness)  # type: ignore[no-any-return]

    def add_ready_callback(self, mask: int, callback: Notify, persistent: bool = True) -> Waiter:
        """Call ``callback(events)`` on the stack's loop when the socket becomes ready."""
        return self._call(self._endpoint.waiters.add, mask, callback, persistent)  # type: ignore[no-any-return]

    def fileno(self) -> int:
        raise OSError(errno.ENOTSOCK, "ustack sockets have no file descriptor; "
                      "use timeouts, readiness callbacks or ustack.aio")

    # --- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._call(self._endpoint.close)

    def __enter__(self: Any) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                self._stack.clock.call_soon_threadsafe(self._endpoint.close)
            except Exception:
                pass

    def _check_open(self) -> None:
        if self._closed:
            raise OSError(errno.EBADF, "Bad file descriptor")

    def _address(self, address: Any) -> tuple[bytes, int]:
        return parse_sockaddr(self.family, address)


class DatagramSocket(Socket):
    """UDP (SOCK_DGRAM) and ICMP echo (SOCK_DGRAM, IPPROTO_ICMP/ICMPV6) sockets."""

    def __init__(self, stack: Stack, family: int, type: int, proto: int,
                 endpoint: DatagramEndpoint) -> None:
        super().__init__(stack, family, type, proto)
        self._ep = endpoint

    @property
    def _endpoint(self) -> DatagramEndpoint:
        return self._ep

    def __repr__(self) -> str:
        return (f"<ustack.socket {self.family.name} {self.type.name} "
                f"laddr={self._ep.local_addr.hex()}:{self._ep.local_port}>")

    def bind(self, address: Any) -> None:
        self._check_open()
        self._call(self._ep.bind, *self._address(address))

    def connect(self, address: Any) -> None:
        self._check_open()
        self._call(self._ep.connect, *self._address(address))

    def connect_ex(self, address: Any) -> int:
        try:
            self.connect(address)
        except OSError as exc:
            return exc.errno or errno.EINVAL
        return 0

    def getsockname(self) -> tuple[Any, ...]:
        return format_sockaddr(self._ep.local_addr, self._ep.local_port)

    def getpeername(self) -> tuple[Any, ...]:
        remote = self._ep.remote
        if remote is None:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return format_sockaddr(*remote)

    def send(self, data: _Buffer, flags: int = 0) -> int:
        self._check_open()
        return self._call(self._ep.sendto, bytes(data), None)

    def sendto(self, data: _Buffer, *args: Any) -> int:
        self._check_open()
        address = args[-1]
        return self._call(self._ep.sendto, bytes(data), self._address(address))

    def sendall(self, data: _Buffer, flags: int = 0) -> None:
        self.send(data, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, tuple[Any, ...]]:
        self._check_open()
        peek = bool(flags & _MSG_PEEK)
        if flags & _MSG_DONTWAIT:
            data, (addr, port) = self._call(self._ep.recvfrom, peek)
        else:
            data, (addr, port) = self._wait(lambda: self._ep.recvfrom(peek), READABLE)
        return data[:bufsize], format_sockaddr(addr, port)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self.recvfrom(bufsize, flags)[0]

    def recvfrom_into(self, buffer: bytearray | memoryview, nbytes: int = 0,
                      flags: int = 0) -> tuple[int, tuple[Any, ...]]:
        view = memoryview(buffer)
        data, addr = self.recvfrom(nbytes or len(view), flags)
        view[:len(data)] = data
        return len(data), addr

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, flags: int = 0) -> int:
        return self.recvfrom_into(buffer, nbytes, flags)[0]

    def wait_writable(self) -> None:
        self._wait(lambda: None, WRITABLE)

    # --- options ---------------------------------------------------------------------------------

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        self._check_open()
        if (level, option) in _MULTICAST_OPTIONS:
            self._call(_set_multicast_option, self._ep, level, option, value)
            return
        number = int.from_bytes(value, "little") if isinstance(value, bytes) else int(value)
        setter = _DATAGRAM_OPTIONS.get((level, option))
        if setter is None:
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")
        if setter in _HOPS:
            number = _hops(number)
        self._call(setattr, self._ep, setter, number if setter not in _BOOL else bool(number))

    def getsockopt(self, level: int, option: int, buflen: int = 0) -> int:
        self._check_open()
        if (level, option) == (_socket.SOL_SOCKET, _socket.SO_ERROR):
            return self._call(self._ep.take_error)
        if (level, option) == (_socket.SOL_SOCKET, _socket.SO_TYPE):
            return int(self.type)
        name = _DATAGRAM_OPTIONS.get((level, option))
        if name is None:
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")
        return int(getattr(self._ep, name))


IP_MULTICAST_ALL = getattr(_socket, "IP_MULTICAST_ALL", 49)  # Linux ip(7)
_SOL_IP, _SOL_IPV6 = _socket.IPPROTO_IP, _socket.IPPROTO_IPV6
_MULTICAST_OPTIONS = frozenset({
    (_SOL_IP, _socket.IP_ADD_MEMBERSHIP), (_SOL_IP, _socket.IP_DROP_MEMBERSHIP),
    (_SOL_IP, _socket.IP_MULTICAST_IF),
    (_SOL_IPV6, _socket.IPV6_JOIN_GROUP), (_SOL_IPV6, _socket.IPV6_LEAVE_GROUP),
    (_SOL_IPV6, _socket.IPV6_MULTICAST_IF),
})
_IPV6_MREQ = struct.Struct("=16sI")  # struct ipv6_mreq: group, interface index (host order)
_IP_MREQN = struct.Struct("=4s4si")  # struct ip_mreqn: group, address, interface index


def _nic_by_address(ep: DatagramEndpoint, addr: bytes) -> int:
    if not any(addr):
        return 0
    nic = ep.stack.local_nic(addr)
    if nic is None:
        raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
    return nic.id


def _set_multicast_option(ep: DatagramEndpoint, level: int, option: int,
                          value: int | bytes) -> None:
    """The struct-valued multicast options, decoded as Linux does (ip(7), ipv6(7))."""
    if level == _SOL_IPV6:
        if ep.size != 16:
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")
        if option == _socket.IPV6_MULTICAST_IF:
            index = value if isinstance(value, int) else int.from_bytes(value[:4], "little")
            if index and index not in ep.stack.nics:
                raise OSError(errno.ENODEV, "No such device")
            ep.multicast_nic = index
            return
        if not isinstance(value, bytes) or len(value) < _IPV6_MREQ.size:
            raise OSError(errno.EINVAL, "Invalid argument")
        group, index = _IPV6_MREQ.unpack_from(value)
        if option == _socket.IPV6_JOIN_GROUP:
            ep.join_group(group, index)
        else:
            ep.leave_group(group, index)
        return
    if ep.size != 4:
        raise OSError(errno.ENOPROTOOPT, "Protocol not available")
    if isinstance(value, int) or len(value) < 4:
        raise OSError(errno.EINVAL, "Invalid argument")
    if option == _socket.IP_MULTICAST_IF:
        # struct in_addr, ip_mreq or ip_mreqn: the interface by address, or by index
        if len(value) >= _IP_MREQN.size:
            _group, addr, index = _IP_MREQN.unpack_from(value)
        else:
            addr, index = (value[4:8] if len(value) >= 8 else value[:4]), 0
        ep.multicast_nic = index or _nic_by_address(ep, addr)
        ep.multicast_source = addr if any(addr) else None
        return
    if len(value) < 8:
        raise OSError(errno.EINVAL, "Invalid argument")
    # struct ip_mreq (group, interface address) or ip_mreqn (..., interface index)
    group, addr = value[:4], value[4:8]
    index = _IP_MREQN.unpack_from(value)[2] if len(value) >= _IP_MREQN.size else 0
    nic_id = index or _nic_by_address(ep, addr)
    if option == _socket.IP_ADD_MEMBERSHIP:
        ep.join_group(group, nic_id)
    else:
        ep.leave_group(group, nic_id)


def _hops(value: int) -> int:
    """IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS: 0..255, -1 for the default (1)."""
    if value == -1 or value == 0xFFFFFFFF:
        return 1
    if not 0 <= value <= 255:
        raise OSError(errno.EINVAL, "Invalid argument")
    return value


_DATAGRAM_OPTIONS = {
    (_socket.SOL_SOCKET, _socket.SO_RCVBUF): "rcvbuf",
    (_socket.SOL_SOCKET, _socket.SO_SNDBUF): "sndbuf",
    (_socket.SOL_SOCKET, _socket.SO_REUSEADDR): "reuse",
    (_socket.SOL_SOCKET, _socket.SO_BROADCAST): "broadcast",
    (_socket.IPPROTO_IP, _socket.IP_TTL): "ttl",
    (_socket.IPPROTO_IP, _socket.IP_TOS): "tos",
    (_socket.IPPROTO_IPV6, _socket.IPV6_UNICAST_HOPS): "ttl",
    (_socket.IPPROTO_IPV6, _socket.IPV6_TCLASS): "tos",
    (_socket.SOL_SOCKET, _socket.SO_REUSEPORT): "reuse_port",
    (_socket.IPPROTO_IP, _socket.IP_MULTICAST_TTL): "multicast_ttl",
    (_socket.IPPROTO_IP, _socket.IP_MULTICAST_LOOP): "multicast_loop",
    (_socket.IPPROTO_IP, IP_MULTICAST_ALL): "multicast_all",
    (_socket.IPPROTO_IPV6, _socket.IPV6_MULTICAST_HOPS): "multicast_ttl",
    (_socket.IPPROTO_IPV6, _socket.IPV6_MULTICAST_LOOP): "multicast_loop",
}
_BOOL = {"reuse", "reuse_port", "broadcast", "multicast_loop", "multicast_all"}
_HOPS = {"multicast_ttl"}


def create_socket(stack: Stack, family: int, type: int, proto: int) -> Socket:
    """The factory behind :meth:`ustack.stack.Stack.socket`."""
    size = family_size(family)
    kind = type & 0xF  # strip SOCK_NONBLOCK / SOCK_CLOEXEC
    if kind == _socket.SOCK_DGRAM:
        number: int = IPProto.UDP
        if proto in (0, IPProto.UDP):
            pass
        elif (proto == IPProto.ICMP and size == 4) or (proto == IPProto.ICMPV6 and size == 16):
            number = proto
        else:
            raise OSError(errno.EPROTONOSUPPORT, "Protocol not supported")
        transport = stack.transport_protocols.get(number)
        if transport is None:
            raise OSError(errno.EPROTONOSUPPORT, "Protocol not registered with this stack")
        endpoint = transport.new_endpoint(size)  # type: ignore[attr-defined]
        sock: Socket = DatagramSocket(stack, family, kind, number, endpoint)
    elif kind == _socket.SOCK_STREAM:
        from ustack.transport.tcp.socket import StreamSocket

        sock = StreamSocket(stack, family, kind, proto or IPProto.TCP)
    else:
        raise OSError(errno.ESOCKTNOSUPPORT, "Socket type not supported")
    if type & _socket.SOCK_NONBLOCK:
        sock.setblocking(False)
    return sock
