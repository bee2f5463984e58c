# SPDX-License-Identifier: MIT
"""SOCK_STREAM sockets on ustack's TCP, in the shape of Python's ``socket.socket``."""

from __future__ import annotations

import errno
import socket as _socket
import struct
from typing import TYPE_CHECKING, Any

from ustack.addr import format_sockaddr
from ustack.socket import Socket
from ustack.transport.tcp import cc, stacks
from ustack.transport.tcp.endpoint import TCPEndpoint
from ustack.transport.tcp.info import TCPInfo, snapshot
from ustack.transport.tcp.state import State
from ustack.waiter import READABLE, WRITABLE
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.stack import Stack

TCP_CONGESTION = getattr(_socket, "TCP_CONGESTION", 13)
TCP_USER_TIMEOUT = getattr(_socket, "TCP_USER_TIMEOUT", 18)
TCP_INFO = getattr(_socket, "TCP_INFO", 11)
TCP_FUNCTION_BLK = stacks.TCP_FUNCTION_BLK  # FreeBSD: the socket's TCP stack
TCP_FUNCTION_ALIAS = stacks.TCP_FUNCTION_ALIAS
SO_MAX_PACING_RATE = getattr(_socket, "SO_MAX_PACING_RATE", 47)  # bytes/s; enables pacing
TCP_PACING = 0x7501  # ustack: pace this connection at 120-200% of cwnd/SRTT (any CC)
TCP_NOOPT = 0x7580  # FreeBSD's TCP_NOOPT (8 there): SYNs and SYN-ACKs carry no options
_Buffer = bytes | bytearray | memoryview
_MSG_DONTWAIT = int(_socket.MSG_DONTWAIT)  # plain ints: IntFlag arithmetic is slow per call
_MSG_PEEK = int(_socket.MSG_PEEK)


class StreamSocket(Socket):
    def __init__(self, stack: Stack, family: int, type: int, proto: int,
                 endpoint: TCPEndpoint | None = None) -> None:
        super().__init__(stack, family, type, proto)
        if endpoint is None:
            protocol = stack.transport_protocols[IPProto.TCP]
            endpoint = protocol.new_endpoint(self._size)  # type: ignore[attr-defined]
        self._ep: TCPEndpoint = endpoint

    @property
    def _endpoint(self) -> TCPEndpoint:
        return self._ep

    def __repr__(self) -> str:
        return f"<ustack.socket {self.family.name} SOCK_STREAM {self._ep.state.label}>"

    # --- addresses -------------------------------------------------------------------------

    def bind(self, address: Any) -> None:
        self._check_open()
        self._call(self._ep.bind, *self._address(address))

    def getsockname(self) -> tuple[Any, ...]:
        return format_sockaddr(self._ep.local_addr, self._ep.local_port)

    def getpeername(self) -> tuple[Any, ...]:
        ep = self._ep
        if ep.state in (State.CLOSED, State.LISTEN) and not ep.was_connected:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return format_sockaddr(ep.remote_addr, ep.remote_port)

    # --- connections ---------------------------------------------------------------------------

    def listen(self, backlog: int = 128) -> None:
        self._check_open()
        self._call(self._ep.listen, backlog)

    def accept(self) -> tuple[StreamSocket, tuple[Any, ...]]:
        self._check_open()
        ep = self._ep

        def attempt() -> TCPEndpoint:
            if ep.state is not State.LISTEN or ep.listener is None:
                raise OSError(errno.EINVAL, "Invalid argument")
            child = ep.listener.accept()
            if child is None:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            return child

        child = self._wait(attempt, READABLE)
        sock = StreamSocket(self._stack, self.family, self.type, self.proto, child)
        return sock, format_sockaddr(child.remote_addr, child.remote_port)

    def connect(self, address: Any) -> None:
        self._check_open()
        addr, port = self._address(address)
        ep = self._ep
        if ep.state is State.SYN_SENT:
            raise BlockingIOError(errno.EALREADY, "Operation already in progress")
        self._call(ep.connect, addr, port)
        if self._timeout == 0:
            raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")

        def attempt() -> None:
            if ep.state in (State.SYN_SENT, State.SYN_RECEIVED):
                raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
            if ep.error:
                raise ep._take_error()
            if ep.state is State.CLOSED:
                raise OSError(errno.ECONNREFUSED, "Connection refused")

        try:
            self._wait(attempt, WRITABLE)
        except TimeoutError:
            self._call(ep.terminate, 0)
            raise

    def connect_ex(self, address: Any) -> int:
        try:
            self.connect(address)
        except OSError as exc:
            return exc.errno or errno.EINVAL
        return 0

    # --- data ----------------------------------------------------------------------------------

    def send(self, data: _Buffer, flags: int = 0) -> int:
        self._check_open()
        chunk = data if isinstance(data, bytes) else bytes(data)
        if flags & _MSG_DONTWAIT:
            return self._call(self._ep.send, chunk)
        return self._wait(lambda: self._ep.send(chunk), WRITABLE)

    def sendall(self, data: _Buffer, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        step = 1 << 20
        offset = 0
        while offset < len(view):
            piece = view[offset:offset + step]
            chunk = bytes(piece) if not isinstance(data, bytes) or len(view) > step else data
            offset += self.send(chunk, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._check_open()
        peek = bool(flags & _MSG_PEEK)
        if flags & _MSG_DONTWAIT:
            return self._call(self._ep.recv, bufsize, peek)
        return self._wait(lambda: self._ep.recv(bufsize, peek), READABLE)

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer)
        data = self.recv(nbytes or len(view), flags)
        view[:len(data)] = data
        return len(data)

    def shutdown(self, how: int) -> None:
        self._check_open()
        self._call(self._ep.shutdown, how)

    def close(self) -> None:
        if self._closed:
            return
        ep = self._ep
        linger = ep.linger
        super().close()
        if linger and ep.state not in (State.CLOSED, State.TIME_WAIT):
            saved, self._timeout = self._timeout, float(linger)

            def drained() -> None:
                if ep.state not in (State.CLOSED, State.TIME_WAIT, State.FIN_WAIT_2):
                    raise BlockingIOError(errno.EAGAIN, "lingering")

            try:
                self._wait(drained, READABLE | WRITABLE)
            except TimeoutError:
                pass
            finally:
                self._timeout = saved

    def tcp_info(self) -> TCPInfo:
        return self._call(snapshot, self._ep)

    # --- options ------------------------------------------------------------------------------

    def setsockopt(self, level: int, option: int, value: int | bytes | str) -> None:
        self._check_open()
        self._call(_set_option, self._ep, level, option, value)

    def getsockopt(self, level: int, option: int, buflen: int = 0) -> Any:
        self._check_open()
        return self._call(_get_option, self._ep, level, option)


def _int(value: int | bytes | str) -> int:
    if isinstance(value, bytes):
        return int.from_bytes(value[:4].ljust(4, b"\0"), "little", signed=True)
    return int(value)


def _set_option(ep: TCPEndpoint, level: int, option: int, value: int | bytes | str) -> None:
    key = (level, option)
    if key == (_socket.SOL_SOCKET, _socket.SO_LINGER):
        onoff, seconds = struct.unpack("ii", value) if isinstance(value, bytes) else (1, value)
        ep.linger = int(seconds) if onoff else None
    elif key == (_socket.SOL_SOCKET, _socket.SO_REUSEADDR):
        ep.reuse = bool(_int(value))
    elif key == (_socket.SOL_SOCKET, _socket.SO_KEEPALIVE):
        ep.keepalive = bool(_int(value))
        if ep.keepalive and ep.state is State.ESTABLISHED:
            ep.keepalive_timer.set(ep.keepidle)
    elif key == (_socket.SOL_SOCKET, _socket.SO_RCVBUF):
        ep.receiver.rcvbuf = max(_int(value), 2048)
    elif key == (_socket.SOL_SOCKET, _socket.SO_SNDBUF):
        ep.sender.sndbuf = max(_int(value), 2048)
    elif key == (_socket.IPPROTO_TCP, _socket.TCP_NODELAY):
        ep.sender.nodelay = bool(_int(value))
        ep.sender.output()
    elif key == (_socket.IPPROTO_TCP, _socket.TCP_CORK):
        ep.sender.cork = bool(_int(value))
        if not ep.sender.cork:
            ep.sender.output()
    elif key == (_socket.IPPROTO_TCP, _socket.TCP_MAXSEG):
        ep.maxseg = _int(value)
        if ep.state is not State.CLOSED:
            ep.update_send_mss()
    elif key == (_socket.IPPROTO_TCP, _socket.TCP_KEEPIDLE):
        ep.keepidle = float(_int(value))
    elif key == (_socket.IPPROTO_TCP, _socket.TCP_KEEPINTVL):
        ep.keepintvl = float(_int(value))
    elif key == (_socket.IPPROTO_TCP, _socket.TCP_KEEPCNT):
        ep.keepcnt = _int(value)
    elif key == (_socket.IPPROTO_TCP, TCP_USER_TIMEOUT):
        ep.user_timeout = _int(value) / 1000.0
    elif key == (_socket.IPPROTO_TCP, _socket.TCP_QUICKACK):
        ep.quickack = ep.config.quickack_segments if _int(value) else 0
    elif key == (_socket.IPPROTO_TCP, TCP_CONGESTION):
        name = value.decode().rstrip("\0") if isinstance(value, bytes) else str(value)
        if name not in cc.available():
            raise OSError(errno.ENOENT, f"No such congestion control: {name}")
        ep.sender.set_congestion_control(name)
    elif key == (_socket.IPPROTO_TCP, TCP_FUNCTION_BLK):
        stacks.select(ep, value)
    elif key == (_socket.IPPROTO_TCP, TCP_NOOPT):
        ep.noopt = bool(_int(value))
    elif key == (_socket.IPPROTO_TCP, TCP_PACING):
        ep.sender.pacing = bool(_int(value))
        ep.sender.update_pacer()
    elif key == (_socket.SOL_SOCKET, SO_MAX_PACING_RATE):
        rate = _int(value) & 0xFFFFFFFF
        ep.sender.max_pacing_rate = 0.0 if rate == 0xFFFFFFFF else float(rate)
        ep.sender.update_pacer()
    elif key in ((_socket.IPPROTO_IP, _socket.IP_TTL),
                 (_socket.IPPROTO_IPV6, _socket.IPV6_UNICAST_HOPS)):
        ep.ttl = _int(value)
    elif key in ((_socket.IPPROTO_IP, _socket.IP_TOS), (_socket.IPPROTO_IPV6, _socket.IPV6_TCLASS)):
        ep.tos = _int(value)
    else:
        raise OSError(errno.ENOPROTOOPT, "Protocol not available")


def _get_option(ep: TCPEndpoint, level: int, option: int) -> Any:
    key = (level, option)
    values: dict[tuple[int, int], Any] = {
        (_socket.SOL_SOCKET, _socket.SO_REUSEADDR): int(ep.reuse),
        (_socket.SOL_SOCKET, _socket.SO_KEEPALIVE): int(ep.keepalive),
        (_socket.SOL_SOCKET, _socket.SO_RCVBUF): ep.receiver.rcvbuf,
        (_socket.SOL_SOCKET, _socket.SO_SNDBUF): ep.sender.sndbuf,
        (_socket.SOL_SOCKET, _socket.SO_TYPE): int(_socket.SOCK_STREAM),
        (_socket.IPPROTO_TCP, _socket.TCP_NODELAY): int(ep.sender.nodelay),
        (_socket.IPPROTO_TCP, _socket.TCP_CORK): int(ep.sender.cork),
        (_socket.IPPROTO_TCP, _socket.TCP_MAXSEG): ep.sender.mss if ep.state.synchronized
        else (ep.maxseg or ep.config.default_mss),
        (_socket.IPPROTO_TCP, _socket.TCP_KEEPIDLE): int(ep.keepidle),
        (_socket.IPPROTO_TCP, _socket.TCP_KEEPINTVL): int(ep.keepintvl),
        (_socket.IPPROTO_TCP, _socket.TCP_KEEPCNT): ep.keepcnt,
        (_socket.IPPROTO_TCP, TCP_USER_TIMEOUT): int(ep.user_timeout * 1000),
        (_socket.IPPROTO_TCP, TCP_CONGESTION): ep.sender.cc.name.encode(),
        (_socket.IPPROTO_TCP, TCP_FUNCTION_BLK): ep.sender.tcp_stack.name.encode(),
        (_socket.IPPROTO_TCP, TCP_FUNCTION_ALIAS): (ep.sender.tcp_stack.aliases or ("",))[0]
        .encode(),
        (_socket.IPPROTO_TCP, TCP_PACING): int(ep.sender.pacing),
        (_socket.IPPROTO_TCP, TCP_NOOPT): int(ep.noopt),
        (_socket.SOL_SOCKET, SO_MAX_PACING_RATE): int(ep.sender.max_pacing_rate) or 0xFFFFFFFF,
        (_socket.IPPROTO_IP, _socket.IP_TTL): ep.ttl or ep.stack.options.default_ttl,
        (_socket.IPPROTO_IP, _socket.IP_TOS): ep.tos,
    }
    if key == (_socket.SOL_SOCKET, _socket.SO_ERROR):
        return ep.take_error()
    if key == (_socket.SOL_SOCKET, _socket.SO_LINGER):
        return struct.pack("ii", int(ep.linger is not None), ep.linger or 0)
    if key == (_socket.IPPROTO_TCP, TCP_INFO):
        return snapshot(ep)
    if key not in values:
        raise OSError(errno.ENOPROTOOPT, "Protocol not available")
    return values[key]
