# SPDX-License-Identifier: MIT
"""The Linux kernel's side of the comparison: the same services as ``ustack host``
(UDP/TCP echo, discard, source) in asyncio on kernel sockets, in a server namespace.

``python3 kernel_servers.py ADDR`` serves echo on 7, discard on 9, source on 19.
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast


class UDPEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's transport; CPython's selector one is no DatagramTransport subclass
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1 << 18):
        writer.write(data)
        await writer.drain()
    writer.close()


async def discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(1 << 20):
        pass
    writer.close()


async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    block = bytes(1 << 20)
    try:
        while not reader.at_eof():
            writer.write(block)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main(addr: str) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(UDPEcho, local_addr=(addr, 7))
    servers = [await asyncio.start_server(cb, addr, port)
               for cb, port in ((echo, 7), (discard, 9), (source, 19))]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
