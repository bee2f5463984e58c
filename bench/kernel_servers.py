# SPDX-License-Identifier: MIT
"""The Linux kernel's side of the comparison: the same services as ``ustack host``
(UDP/TCP echo, discard, source), the very same handlers (ustack.apps.echo), on kernel
sockets in a server namespace.

``python3 kernel_servers.py ADDR`` serves echo on 7, discard on 9, source on 19.
"""

from __future__ import annotations

import asyncio
import sys

from ustack.apps.echo import UDPEcho, discard_stream, echo_stream, source_stream


async def main(addr: str) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(UDPEcho, local_addr=(addr, 7))
    servers = [await asyncio.start_server(cb, addr, port)
               for cb, port in ((echo_stream, 7), (discard_stream, 9), (source_stream, 19))]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
