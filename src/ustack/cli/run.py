# SPDX-License-Identifier: MIT
"""Run a command with networking through ustack: unprivileged, no host routing.

The command gets a network namespace (inside a user namespace when not root)
whose only link is a tap; ustack on the other end is its gateway (10.0.2.2,
fd00:0:0:2::2), answers ARP/NDP, DHCP, DHCPv6 and DNS there, and carries each
of the guest's TCP, UDP and ICMP echo flows over ordinary host sockets. The
gateway address reaches the host's own loopback services. Host ports are
forwarded in with -t/-u. ustack exits with the command's status.

Examples:
  ustack run -- curl http://example.org/          # (from a machine with a network)
  ustack run -t 8080:80 -- python3 -m http.server 80
  ustack run                                       # a shell in the guest
  ustack run --netns NAME -- ip addr               # serve an existing namespace
  ustack run --netns NAME                          # ... until SIGTERM
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
from ustack.forward.guest import Guest, spawn_guest

log = logging.getLogger("ustack.run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-m", "--mtu", type=int, default=DEFAULT_MTU, help="guest link MTU (default 65520)")
    add("--netns", metavar="PATH|NAME", help="serve this existing namespace instead")
    add("--tap", default="tap0", help="the guest's interface name (default tap0)")
    add("--no-offload", action="store_true", help="no checksum offload or GSO on the tap")
    add("--userns", action=argparse.BooleanOptionalAction, default=None,
        help="run in a new user namespace (default: when not root)")
    add_forwarding_arguments(parser)
    add("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS]",
        help="what to run in the guest (default: your shell)")


def run(args: argparse.Namespace) -> int:
    argv = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    net, tcp_ports, udp_ports = forwarding_setup(args, GuestNetwork(mtu=args.mtu))
    if args.netns and not argv:
        argv = ["sleep", "infinity"]  # serve the namespace until we are told to stop
    try:
        guest = spawn_guest(argv or None, net, tap_name=args.tap, mtu=args.mtu,
                            offload=not args.no_offload, userns=args.userns, netns=args.netns)
    except OSError as exc:
        code = getattr(exc, "exit_status", 125)
        if code in (126, 127):
            print(f"ustack run: {exc}")
            return int(code)
        raise UserError(str(exc)) from None
    with guest:
        return asyncio.run(_serve(args, guest, net, tcp_ports, udp_ports))


async def _serve(args: argparse.Namespace, guest: Guest, net: GuestNetwork,
                 tcp_ports: list[tuple[int, int]], udp_ports: list[tuple[int, int]]) -> int:
    loop = asyncio.get_running_loop()
    # The guest owns the terminal: ^C and ^\ are for it, as under a shell.
    for sig in (signal.SIGINT, signal.SIGQUIT):
        loop.add_signal_handler(sig, lambda: None)
    loop.add_signal_handler(signal.SIGTERM, guest.terminate)
    async with serve_guest_link(guest.tap, net, tcp_ports, udp_ports,
                                router_advertisements=False, pcap=args.pcap) as served:
        guest.tap.start(loop)
        guest.start()
        status = await guest.wait()
        if args.verbose:
            log.info("guest exited with %d; %s", status, served.summary())
    return status


__all__ = ["Path", "add_arguments", "run"]
