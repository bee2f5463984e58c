# SPDX-License-Identifier: MIT
"""Run a command with networking through ustack: unprivileged, no host routing.

The command gets a network namespace (inside a user namespace when not root)
whose only link is a tap; ustack on the other end is its gateway (10.0.2.2,
fd00:0:0:2::2), answers ARP/NDP, DHCP, DHCPv6 and DNS there, and carries each
of the guest's TCP, UDP and ICMP echo flows over ordinary host sockets. The
gateway address reaches the host's own loopback services. Host ports are
forwarded in with -t/-u; the guest's own loopback ports reach the host's
loopback with -T/-U. ustack exits with the command's status, and the command
never outlives ustack (it is killed if ustack is).

Examples:
  ustack run -- curl http://example.org/          # (from a machine with a network)
  ustack run -t 8080:80 -- python3 -m http.server 80
  ustack run -T 5432 -- psql -h 127.0.0.1           # the host's loopback database
  ustack run -a 192.168.7.10/24 -g 192.168.7.1 -4 -- ip addr
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
from ustack.forward.loopback_ports import LoopbackForwarder
from ustack.forward.portfwd import PortSpecError, parse_ports

log = logging.getLogger("ustack.run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-m", "--mtu", type=int, default=DEFAULT_MTU, help="guest link MTU (default 65520)")
    add("--netns", metavar="PATH|NAME", help="serve this existing namespace instead")
    add("-I", "--tap", "--ns-ifname", dest="tap", default="tap0",
        help="the guest's interface name (default tap0)")
    add("--no-offload", action="store_true", help="no checksum offload or GSO on the tap")
    add("--userns", action=argparse.BooleanOptionalAction, default=None,
        help="run in a new user namespace (default: when not root)")
    add_forwarding_arguments(parser)
    add("-T", "--tcp-ns", action="append", default=[], metavar="SPEC",
        help="forward the guest's loopback TCP ports to the host's loopback: "
             "PORT[:HOSTPORT], ranges A-B, lists (127.0.0.1 and ::1 inside)")
    add("-U", "--udp-ns", action="append", default=[], metavar="SPEC",
        help="forward the guest's loopback UDP ports likewise")
    add("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS]",
        help="what to run in the guest (default: your shell)")


def run(args: argparse.Namespace) -> int:
    argv = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    net, tcp_ports, udp_ports = forwarding_setup(args, GuestNetwork(mtu=args.mtu))
    try:
        tcp_ns = dict(parse_ports(args.tcp_ns))
        udp_ns = dict(parse_ports(args.udp_ns))
    except PortSpecError as exc:
        raise UserError(str(exc)) from None
    if args.netns and not argv:
        argv = ["sleep", "infinity"]  # serve the namespace until we are told to stop
    try:
        guest = spawn_guest(argv or None, net, tap_name=args.tap, mtu=args.mtu,
                            offload=not args.no_offload, userns=args.userns, netns=args.netns,
                            loopback_tcp=sorted(tcp_ns), loopback_udp=sorted(udp_ns),
                            die_with_parent=True)
    except ValueError as exc:  # a bad --mtu or --tap
        raise UserError(str(exc)) from None
    except OSError as exc:
        code = getattr(exc, "exit_status", 125)
        if code in (126, 127):
            print(f"ustack run: {exc}")
            return int(code)
        raise UserError(str(exc)) from None
    with guest:
        return asyncio.run(_serve(args, guest, net, tcp_ports, udp_ports, tcp_ns, udp_ns))


async def _serve(args: argparse.Namespace, guest: Guest, net: GuestNetwork,
                 tcp_ports: list[tuple[int, int]], udp_ports: list[tuple[int, int]],
                 tcp_ns: dict[int, int], udp_ns: dict[int, int]) -> int:
    loop = asyncio.get_running_loop()
    # The guest owns the terminal: ^C and ^\ are for it, as under a shell.
    for sig in (signal.SIGINT, signal.SIGQUIT):
        loop.add_signal_handler(sig, lambda: None)
    loop.add_signal_handler(signal.SIGTERM, guest.terminate)
    async with serve_guest_link(guest.tap, net, tcp_ports, udp_ports,
                                router_advertisements=False, pcap=args.pcap) as served:
        loopback = LoopbackForwarder(loop, guest.loopback, tcp_ns, udp_ns)
        try:
            loopback.start()
            guest.tap.start(loop)
            guest.start()
            status = await guest.wait()
        finally:
            loopback.close()
        if args.verbose:
            log.info("guest exited with %d; %s; loopback: %d connections, %d refused",
                     status, served.summary(), loopback.connections, loopback.refused)
    return status


__all__ = ["Path", "add_arguments", "run"]
