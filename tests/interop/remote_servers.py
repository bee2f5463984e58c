# SPDX-License-Identifier: MIT
"""The "remote" servers of the forwarding tests, run in a namespace of their own.

``python3 remote_servers.py ROOT``: HTTP on 80 (files from ROOT), DNS on 53/udp
(every A query answered with 10.98.0.2, AAAA with fd98::2), TCP echo on 7, a bulk
sink on 9000 (replies with the sha256 of what it read) and a bulk source on 9001
(reads a size line, sends that many bytes of a fixed pattern). Both families.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import http.server
import socket
import sys
import threading
from typing import Any, cast

PATTERN = bytes(range(256)) * 4096  # 1 MiB


class DNS(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # not an isinstance check: 3.11's _SelectorDatagramTransport is no DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12:
            return
        end = 12
        while end < len(data) and data[end]:
            end += data[end] + 1
        question = data[12:end + 5]
        qtype = int.from_bytes(data[end + 1:end + 3], "big")
        answer = b""
        if qtype in (1, 28):
            rdata = socket.inet_pton(socket.AF_INET if qtype == 1 else socket.AF_INET6,
                                     "10.98.0.2" if qtype == 1 else "fd98::2")
            answer = (b"\xc0\x0c" + qtype.to_bytes(2, "big") + b"\x00\x01" + (60).to_bytes(4, "big")
                      + len(rdata).to_bytes(2, "big") + rdata)
        header = data[:2] + b"\x81\x80" + b"\x00\x01" + (1 if answer else 0).to_bytes(2, "big") \
            + b"\x00\x00\x00\x00"
        self.transport.sendto(header + question + answer, addr)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    digest = hashlib.sha256()
    count = 0
    while data := await reader.read(1 << 20):
        digest.update(data)
        count += len(data)
    writer.write(f"{count} {digest.hexdigest()}\n".encode())
    await writer.drain()
    writer.close()


async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    size = int((await reader.readline()).strip())
    while size > 0:
        chunk = PATTERN[:size]
        writer.write(chunk)
        size -= len(chunk)
        await writer.drain()
    writer.close()


def http_thread(root: str) -> None:
    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6

        def server_bind(self) -> None:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=root)
    server = Server(("::", 80), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


async def main(root: str) -> None:
    http_thread(root)
    loop = asyncio.get_running_loop()
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, 53))
        await loop.create_datagram_endpoint(DNS, sock=sock)
    servers = [await asyncio.start_server(cb, host, port)
               for cb, port in ((echo, 7), (sink, 9000), (source, 9001))
               for host in ("0.0.0.0", "::")]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
