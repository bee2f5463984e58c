# SPDX-License-Identifier: MIT
"""Serve a VM over qemu's stream socket: the VM's network is ustack, as with passt.

The VM's NIC is qemu's ``-netdev stream``: Ethernet frames on a UNIX socket, each
after its 32-bit big-endian length. ustack is the VM's gateway (10.0.2.2,
fd00:0:0:2::2): it configures the VM by DHCP, router advertisements and DHCPv6,
forwards DNS, and carries the VM's flows over host sockets. One VM at a time;
a VM that reconnects is served again.

Example:
  ustack passt --socket /tmp/vm.sock -t 2222:22 &
  qemu-system-x86_64 ... -netdev stream,id=n0,server=off,addr.type=unix,\\
      addr.path=/tmp/vm.sock -device virtio-net-pci,netdev=n0
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from ustack.cli.errors import UserError
from ustack.cli.serve import add_forwarding_arguments, forwarding_setup, serve_guest_link
from ustack.forward.config import DEFAULT_MTU, GuestNetwork
from ustack.link.qemu import QemuStreamServer

log = logging.getLogger("ustack.passt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-s", "--socket", type=Path, required=True, metavar="PATH",
        help="UNIX socket to listen on for the VM (must not exist)")
    add("-m", "--mtu", type=int, default=DEFAULT_MTU, help="link MTU (default 65520)")
    add_forwarding_arguments(parser)


def run(args: argparse.Namespace) -> int:
    net, tcp_ports, udp_ports = forwarding_setup(args, GuestNetwork(mtu=args.mtu))
    try:
        server = QemuStreamServer(str(args.socket), mtu=args.mtu)
    except OSError as exc:
        raise UserError(exc.strerror or str(exc)) from None
    except ValueError as exc:  # a bad --mtu
        raise UserError(str(exc)) from None
    try:
        return asyncio.run(_serve(args, server, net, tcp_ports, udp_ports))
    finally:
        server.close()


async def _serve(args: argparse.Namespace, server: QemuStreamServer, net: GuestNetwork,
                 tcp_ports: list[tuple[int, int]], udp_ports: list[tuple[int, int]]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve_guest_link(server.endpoint, net, tcp_ports, udp_ports,
                                pcap=args.pcap) as served:
        if not args.quiet:
            server.on_connect = lambda: print("ustack passt: guest connected", flush=True)
            server.on_disconnect = lambda why: print(f"ustack passt: guest gone ({why})",
                                                     flush=True)
            print(f"ustack passt: listening on {args.socket}", flush=True)
        server.start(loop)
        await stop.wait()
        if not args.quiet:
            print(f"ustack passt: {served.summary()}")
    return 0
