# SPDX-License-Identifier: MIT
"""asyncio streams over ustack TCP: an ``asyncio.Transport`` on a TCP endpoint, and
``open_connection`` / ``start_server`` returning the standard reader and writer."""

from __future__ import annotations

import asyncio
import errno
import socket as _socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ustack.addr import format_sockaddr, parse_sockaddr
from ustack.stack import Stack
from ustack.transport.tcp.endpoint import TCPEndpoint
from ustack.transport.tcp.info import snapshot
from ustack.transport.tcp.state import State
from ustack.waiter import ERROR, HANGUP, READABLE, WRITABLE, Waiter
from ustack.wire.proto import IPProto

READ_CHUNK = 256 * 1024
_FLUSH_ON = WRITABLE | ERROR | HANGUP  # events that may let queued writes go on, or end them
_READ_ON = READABLE | ERROR | HANGUP


class StreamTransport(asyncio.Transport):
    """Reads are pushed to the protocol as data arrives (paused by pause_reading, which
    closes the TCP window); writes beyond the send buffer wait here, with flow control."""

    def __init__(self, ep: TCPEndpoint, protocol: asyncio.Protocol,
                 loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._ep = ep
        self._protocol = protocol
        self._loop = loop
        self._pending: deque[memoryview] = deque()  # views of immutable bytes
        self._pending_size = 0
        self._high = 1 << 20
        self._low = 1 << 18
        self._protocol_paused = False
        self._reading_paused = False
        self._closing = False
        self._eof_requested = False
        self._lost = False
        self._waiter: Waiter | None = ep.waiters.add(READABLE | WRITABLE | ERROR | HANGUP,
                                                     self._on_event, persistent=True)
        protocol.connection_made(self)
        loop.call_soon(self._on_event, READABLE | WRITABLE)

    # --- events from the endpoint -----------------------------------------------------------

    def _on_event(self, events: int) -> None:
        if self._lost:
            return
        if events & _FLUSH_ON:
            self._flush()
        if events & _READ_ON and not self._reading_paused:
            self._read()

    def _read(self) -> None:
        while not self._reading_paused and not self._lost:
            try:
                data = self._ep.read_ready(READ_CHUNK)
            except OSError as exc:
                self._connection_lost(exc)
                return
            if data is None:  # nothing more for now
                return
            if not data:
                keep_open = self._protocol.eof_received()
                if not keep_open:
                    self.close()
                self._reading_paused = True
                return
            self._protocol.data_received(data)

    def _flush(self) -> None:
        ep = self._ep
        while self._pending:
            chunk = self._pending[0]
            try:
                taken = ep.send(chunk)
            except BlockingIOError:
                break
            except OSError as exc:
                self._connection_lost(exc)
                return
            self._pending_size -= taken
            if taken < len(chunk):
                self._pending[0] = chunk[taken:]
                break
            self._pending.popleft()
        if self._protocol_paused and self._pending_size <= self._low:
            self._protocol_paused = False
            self._protocol.resume_writing()
        if not self._pending:
            if self._eof_requested and ep.state in (State.ESTABLISHED, State.CLOSE_WAIT):
                ep.shutdown(_socket.SHUT_WR)
            if self._closing:
                self._finish_close()

    # --- the Transport API ------------------------------------------------------------------

    def write(self, data: Any) -> None:
        if self._eof_requested or self._lost:
            return
        chunk = memoryview(data if isinstance(data, bytes) else bytes(data))
        if not chunk:
            return
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        self._flush()
        if not self._protocol_paused and self._pending_size > self._high:
            self._protocol_paused = True
            self._protocol.pause_writing()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self._eof_requested = True
        self._flush()

    def get_write_buffer_size(self) -> int:
        return self._pending_size

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = 1 << 20 if high is None else high
        self._low = self._high // 4 if low is None else low

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        if self._reading_paused and not self._lost:
            self._reading_paused = False
            self._loop.call_soon(self._on_event, READABLE)

    def is_reading(self) -> bool:
        return not self._reading_paused

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if not self._pending:
            self._finish_close()

    def abort(self) -> None:
        self._ep.abort()
        self._connection_lost(None)

    def _finish_close(self) -> None:
        self._ep.close()
        self._connection_lost(None)

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        if self._waiter is not None:
            self._ep.waiters.remove(self._waiter)
            self._waiter = None
        self._loop.call_soon(self._protocol.connection_lost, exc)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        ep = self._ep
        if name == "peername":
            return format_sockaddr(ep.remote_addr, ep.remote_port)
        if name == "sockname":
            return format_sockaddr(ep.local_addr, ep.local_port)
        if name == "tcp_info":
            return snapshot(ep)
        if name == "endpoint":
            return ep
        return default


def _family_of(host: str) -> int:
    return _socket.AF_INET6 if ":" in host else _socket.AF_INET


async def _connected(ep: TCPEndpoint) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def check(_events: int = 0) -> None:
        if done.done():
            return
        if ep.state in (State.SYN_SENT, State.SYN_RECEIVED):
            ep.waiters.add(WRITABLE | ERROR | HANGUP, check)
            return
        if ep.error or ep.state is State.CLOSED:
            code = ep.take_error() or errno.ECONNREFUSED
            done.set_exception(ConnectionRefusedError(code, "connection failed")
                               if code == errno.ECONNREFUSED else OSError(code, "connect"))
            return
        done.set_result(None)

    check()
    await done


async def open_connection(stack: Stack, host: str, port: int, *, limit: int = 2 ** 16,
                          local_addr: tuple[str, int] | None = None,
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Like ``asyncio.open_connection``, over ustack (numeric addresses)."""
    loop = asyncio.get_running_loop()
    family = _family_of(host)
    protocol_obj = stack.transport_protocols[IPProto.TCP]
    ep: TCPEndpoint = protocol_obj.new_endpoint(4 if family == _socket.AF_INET else 16)  # type: ignore[attr-defined]
    if local_addr is not None:
        ep.bind(*parse_sockaddr(family, local_addr))
    ep.connect(*parse_sockaddr(family, (host, port)))
    await _connected(ep)
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = StreamTransport(ep, protocol, loop)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


ClientCallback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]


class StreamServer:
    """What ``start_server`` returns: the listening endpoint and a way to stop it."""

    def __init__(self, ep: TCPEndpoint, callback: ClientCallback, limit: int,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.endpoint = ep
        self._callback = callback
        self._limit = limit
        self._loop = loop
        self._closed = asyncio.Event()
        self._waiter = ep.waiters.add(READABLE, self._accept_ready, persistent=True)

    @property
    def sockname(self) -> tuple[Any, ...]:
        return format_sockaddr(self.endpoint.local_addr, self.endpoint.local_port)

    def _accept_ready(self, _events: int) -> None:
        listener = self.endpoint.listener
        while listener is not None:
            child = listener.accept()
            if child is None:
                return
            reader = asyncio.StreamReader(limit=self._limit, loop=self._loop)
            protocol = asyncio.StreamReaderProtocol(reader, self._callback,
                                                    loop=self._loop)
            StreamTransport(child, protocol, self._loop)

    def close(self) -> None:
        self.endpoint.waiters.remove(self._waiter)
        self.endpoint.close()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def __aenter__(self) -> StreamServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


async def start_server(stack: Stack, client_connected_cb: ClientCallback, host: str = "0.0.0.0",
                       port: int = 0, *, backlog: int = 128, limit: int = 2 ** 16,
                       reuse_address: bool = True) -> StreamServer:
    """Like ``asyncio.start_server``, over ustack."""
    loop = asyncio.get_running_loop()
    family = _family_of(host)
    protocol_obj = stack.transport_protocols[IPProto.TCP]
    ep: TCPEndpoint = protocol_obj.new_endpoint(4 if family == _socket.AF_INET else 16)  # type: ignore[attr-defined]
    ep.reuse = reuse_address
    ep.bind(*parse_sockaddr(family, (host, port)))
    ep.listen(backlog)
    return StreamServer(ep, client_connected_cb, limit, loop)
