# SPDX-License-Identifier: MIT
"""Echo (RFC 862), discard (RFC 863) and a chargen-like source (RFC 864) over UDP and
TCP, on the stack's loop. The protocol and stream handlers are plain asyncio, so the
benchmarks run the very same code on kernel sockets (bench/kernel_servers.py)."""

from __future__ import annotations

import asyncio
from typing import cast

from ustack import aio
from ustack.stack import Stack


class UDPEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's transport (CPython's selector one is no DatagramTransport
        # subclass at runtime, so a cast rather than an isinstance check)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


async def udp_echo(stack: Stack, port: int, host: str = "0.0.0.0") -> aio.DatagramTransport:
    transport, _ = await aio.create_datagram_endpoint(stack, UDPEcho, local_addr=(host, port))
    return transport


async def echo_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 18):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def discard_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.read(1 << 20):
            pass
    except ConnectionError:
        pass
    finally:
        writer.close()


async def source_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send until the client goes away: a fast chargen (RFC 864) for throughput tests."""
    block = bytes(1 << 20)
    try:
        while not reader.at_eof():
            writer.write(block)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def tcp_source(stack: Stack, port: int, host: str = "0.0.0.0") -> aio.StreamServer:
    return await aio.start_server(stack, source_stream, host, port)


async def tcp_echo(stack: Stack, port: int, host: str = "0.0.0.0") -> aio.StreamServer:
    return await aio.start_server(stack, echo_stream, host, port)


async def tcp_discard(stack: Stack, port: int, host: str = "0.0.0.0") -> aio.StreamServer:
    return await aio.start_server(stack, discard_stream, host, port)
