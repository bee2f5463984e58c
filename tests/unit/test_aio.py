# SPDX-License-Identifier: MIT
"""ustack.aio: real asyncio StreamReader/StreamWriter and datagram endpoints over two
stacks that share one running event loop (RealClock), joined by a channel link."""

from __future__ import annotations

import asyncio
import hashlib
import os

from ustack import aio
from ustack.clock import RealClock
from ustack.link.channel import ChannelEndpoint
from ustack.stack import Stack


def _two_stacks(loop: asyncio.AbstractEventLoop) -> tuple[Stack, Stack]:
    clock = RealClock(loop)
    a, b = Stack(clock, seed=1), Stack(clock, seed=2)
    la, lb = ChannelEndpoint.pair(clock)
    a.create_nic(la, "eth0")
    b.create_nic(lb, "eth0")
    a.add_address("eth0", "10.0.0.1/24")
    b.add_address("eth0", "10.0.0.2/24")
    a.add_address("eth0", "fd00::1/64", dad=False)
    b.add_address("eth0", "fd00::2/64", dad=False)
    return a, b


def test_stream_echo_round_trip_with_sha256() -> None:
    async def main() -> tuple[str, str, tuple[str, int]]:
        a, b = _two_stacks(asyncio.get_running_loop())
        peers: list[tuple[str, int]] = []

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append(writer.get_extra_info("peername"))
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await aio.start_server(b, echo, "0.0.0.0", 7)
        reader, writer = await aio.open_connection(a, "10.0.0.2", 7)
        payload = os.urandom(3 << 20)

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        received = await reader.read(-1)
        await sender
        writer.close()
        server.close()
        return (hashlib.sha256(received).hexdigest(), hashlib.sha256(payload).hexdigest(),
                peers[0])

    got, want, peer = asyncio.run(main())
    assert got == want
    assert peer[0] == "10.0.0.1"


def test_ipv6_stream_and_readline() -> None:
    async def main() -> bytes:
        a, b = _two_stacks(asyncio.get_running_loop())

        async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            name = await reader.readline()
            writer.write(b"hello " + name)
            await writer.drain()
            writer.close()

        server = await aio.start_server(b, greet, "::", 80)
        reader, writer = await aio.open_connection(a, "fd00::2", 80)
        writer.write(b"ustack\n")
        line = await reader.readline()
        writer.close()
        server.close()
        return line

    assert asyncio.run(main()) == b"hello ustack\n"


def test_connection_refused() -> None:
    async def main() -> str:
        a, _b = _two_stacks(asyncio.get_running_loop())
        try:
            await aio.open_connection(a, "10.0.0.2", 9)
        except ConnectionRefusedError:
            return "refused"
        return "connected"

    assert asyncio.run(main()) == "refused"


def test_paused_reading_closes_the_window_and_resumes() -> None:
    async def main() -> tuple[int, int, int]:
        a, b = _two_stacks(asyncio.get_running_loop())
        server_writer: list[asyncio.StreamWriter] = []

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            server_writer.append(writer)
            await asyncio.sleep(3600)

        server = await aio.start_server(b, sink, "0.0.0.0", 9, limit=4096)
        _reader, writer = await aio.open_connection(a, "10.0.0.2", 9)
        writer.write(bytes(4 << 20))  # far more than the receiver's buffers hold
        await asyncio.sleep(0.3)
        stalled = writer.transport.get_write_buffer_size()
        ep = server_writer[0].transport.get_extra_info("endpoint")
        # what the window field says: below one window-scale unit is advertised as 0
        window = (ep.receiver.rcv_adv - ep.receiver.rcv_nxt) >> ep.receiver.wscale
        writer.close()
        server.close()
        return stalled, window, ep.receiver.buffered

    stalled, window, buffered = asyncio.run(main())
    assert stalled > 0  # the sender is flow-controlled ...
    assert window == 0  # ... because the receiving application stopped reading
    assert buffered > 0


def test_datagram_endpoint_echo() -> None:
    async def main() -> list[tuple[bytes, tuple[str, int]]]:
        a, b = _two_stacks(asyncio.get_running_loop())
        got: list[tuple[bytes, tuple[str, int]]] = []
        done = asyncio.Event()

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.DatagramTransport)
                self.t = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.t.sendto(data.upper(), addr)

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                got.append((data, addr))
                if len(got) == 3:
                    done.set()

        server, _ = await aio.create_datagram_endpoint(b, Echo, local_addr=("0.0.0.0", 53))
        client, _ = await aio.create_datagram_endpoint(a, Client, remote_addr=("10.0.0.2", 53))
        for word in (b"one", b"two", b"three"):
            client.sendto(word)
        await asyncio.wait_for(done.wait(), 5)
        client.close()
        server.close()
        return got

    got = asyncio.run(main())
    assert [data for data, _ in got] == [b"ONE", b"TWO", b"THREE"]
    assert got[0][1] == ("10.0.0.2", 53)
