# SPDX-License-Identifier: MIT
"""asyncio on ustack: datagram endpoints (UDP) and streams (TCP).

Everything here must run on the loop that owns the stack (the stack's RealClock
loop). Streams are real ``asyncio.StreamReader``/``StreamWriter`` objects over a
transport that talks to a ustack TCP endpoint.
"""

from __future__ import annotations

import asyncio
import os
import socket as _socket
from collections.abc import Callable
from typing import Any

from ustack.addr import format_sockaddr, parse_sockaddr
from ustack.aio_streams import StreamServer, StreamTransport, open_connection, start_server
from ustack.stack import Stack
from ustack.transport.datagram import DatagramEndpoint
from ustack.wire.proto import IPProto

__all__ = ["DatagramTransport", "StreamServer", "StreamTransport", "create_datagram_endpoint",
           "open_connection", "start_server"]


class DatagramTransport(asyncio.DatagramTransport):
    """An asyncio DatagramTransport over a ustack UDP endpoint."""

    def __init__(self, endpoint: DatagramEndpoint, protocol: asyncio.DatagramProtocol,
                 family: int) -> None:
        super().__init__()
        self._ep = endpoint
        self._protocol = protocol
        self._family = family
        self._closing = False
        endpoint.on_datagram = self._received
        endpoint.on_error = self._error

    def _received(self, data: bytes, source: tuple[bytes, int]) -> None:
        self._protocol.datagram_received(data, format_sockaddr(*source))

    def _error(self, code: int) -> None:
        self._ep.take_error()
        self._protocol.error_received(OSError(code, os.strerror(code)))

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing:
            raise OSError("transport is closing")
        dest = parse_sockaddr(self._family, addr) if addr is not None else None
        try:
            self._ep.sendto(bytes(data), dest)
        except OSError as exc:
            self._protocol.error_received(exc)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return format_sockaddr(self._ep.local_addr, self._ep.local_port)
        if name == "peername":
            return format_sockaddr(*self._ep.remote) if self._ep.remote else default
        if name == "endpoint":
            return self._ep
        return default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._ep.close()
        asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return 0


async def create_datagram_endpoint(
        stack: Stack, protocol_factory: Callable[[], asyncio.DatagramProtocol], *,
        local_addr: tuple[Any, ...] | None = None, remote_addr: tuple[Any, ...] | None = None,
        family: int = 0, allow_broadcast: bool = False,
) -> tuple[DatagramTransport, asyncio.DatagramProtocol]:
    """Like ``loop.create_datagram_endpoint``, on a ustack stack (numeric addresses only)."""
    if not family:
        some = local_addr or remote_addr
        family = _socket.AF_INET6 if some and ":" in str(some[0]) else _socket.AF_INET
    size = 4 if family == _socket.AF_INET else 16
    proto = stack.transport_protocols[IPProto.UDP]
    endpoint: DatagramEndpoint = proto.new_endpoint(size)  # type: ignore[attr-defined]
    endpoint.broadcast = allow_broadcast
    if local_addr is not None:
        endpoint.bind(*parse_sockaddr(family, local_addr))
    if remote_addr is not None:
        endpoint.connect(*parse_sockaddr(family, remote_addr))
    protocol = protocol_factory()
    transport = DatagramTransport(endpoint, protocol, family)
    protocol.connection_made(transport)
    return transport, protocol
