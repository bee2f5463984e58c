# SPDX-License-Identifier: MIT
"""Serve a tap device in a network namespace with a ustack host, so the Linux kernel
(and you) can talk to it: ping, UDP and TCP echo, discard, an HTTP file server, and
an HTTP client (--fetch).

With no arguments it creates the namespace ustack-demo (kernel 10.211.0.1, fd11::1;
ustack 10.211.0.2, fd11::2) with echo services and an HTTP server, and prints how
to reach them; --demo also runs a self-check from the namespace and exits.

Examples:
  ustack host
  ustack host --demo
  ustack host --netns lab --address 10.9.0.2/24 --peer 10.9.0.1/24 --udp-echo 7
  ustack host --netns lab --address 10.9.0.2/24 --peer 10.9.0.1/24 \\
              --fetch http://10.9.0.1:8000/big.bin --output /tmp/big.bin
  ustack ss --netns lab           # its live connections, like ss -ti
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

from ustack import control, netns
from ustack.apps import echo, http, ping
from ustack.cli.errors import UserError
from ustack.contracts import LinkEndpoint
from ustack.link.impairment import Impairment, ImpairmentEndpoint
from ustack.link.sniffer import SnifferEndpoint
from ustack.link.tap import TapEndpoint
from ustack.runtime import new_stack
from ustack.stack import Stack

log = logging.getLogger("ustack.host")

DEMO_NETNS = "ustack-demo"
DEMO_ADDRESSES = ["10.211.0.2/24", "fd11::2/64"]
DEMO_PEERS = ["10.211.0.1/24", "fd11::1/64"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--netns", help=f"namespace to serve (created if missing; default {DEMO_NETNS})")
    add("--address", action="append", default=[], metavar="ADDR/LEN",
        help="ustack's address on the tap (repeatable)")
    add("--peer", action="append", default=[], metavar="ADDR/LEN",
        help="the kernel side's address on the tap (repeatable)")
    add("--mtu", type=int, default=1500, help="tap MTU, up to 65520 (default 1500)")
    add("--tap", default="ustk0", help="tap device name (default ustk0)")
    add("--no-offload", action="store_true", help="no checksum offload or GSO on the tap")
    add("--udp-echo", type=int, action="append", default=[], metavar="PORT")
    add("--tcp-echo", type=int, action="append", default=[], metavar="PORT")
    add("--tcp-discard", type=int, action="append", default=[], metavar="PORT")
    add("--tcp-source", type=int, action="append", default=[], metavar="PORT",
        help="send data to whoever connects, until they close (for throughput tests)")
    add("--http", type=int, metavar="PORT", help="serve --http-root over HTTP on PORT")
    add("--http-root", type=Path, metavar="DIR", help="directory for --http (default: cwd)")
    add("--fetch", metavar="URL", help="GET URL over ustack, save it to --output, and exit")
    add("--output", type=Path, metavar="FILE", help="where --fetch saves the body")
    add("--ping", metavar="ADDR", help="ping ADDR from ustack (--count times) and exit")
    add("--count", type=int, default=3, help="echo requests for --ping (default 3)")
    add("--pcap", type=Path, metavar="FILE", help="record the tap's frames to a pcap file")
    add("--loss", type=float, default=0.0, metavar="PCT",
        help="drop PCT%% of frames each way in ustack's impairment link")
    add("--reorder", type=float, default=0.0, metavar="PCT",
        help="hold back PCT%% of frames each way (reordering)")
    add("--seed", type=int, default=1, help="seed for --loss/--reorder (default 1)")
    add("--tcp-stack", metavar="NAME", help="TCP stack for every connection (default, rack)")
    add("--cc", metavar="NAME", help="congestion control for every connection "
        "(newreno, cubic, bbr)")
    add("--control", type=Path, metavar="PATH", help="control socket for 'ustack ss'")
    add("--keep-netns", action="store_true", help="leave a namespace we created in place")
    add("--ss", action="store_true", help="print the connections every 2 s, like ss -ti")
    add("--demo", action="store_true", help="run a self-check from the namespace, then exit")


def _defaults(args: argparse.Namespace) -> None:
    demo = args.netns is None and not args.address
    args.netns = args.netns or DEMO_NETNS
    if demo:
        args.address, args.peer = DEMO_ADDRESSES[:], DEMO_PEERS[:]
        args.udp_echo = args.udp_echo or [7]
        args.tcp_echo = args.tcp_echo or [7]
        args.tcp_discard = args.tcp_discard or [9]
        if args.http is None:
            args.http = 80
    if not args.address:
        raise UserError("give ustack an address with --address ADDR/LEN (or no options "
                        "at all for the demo namespace)")
    if args.fetch and not args.output:
        raise UserError("--fetch needs --output FILE")
    if not 68 <= args.mtu <= 65520:
        raise UserError(f"--mtu {args.mtu} is outside 68..65520")


def run(args: argparse.Namespace) -> int:
    _defaults(args)
    with ExitStack() as cleanup:
        # pyroute2 runs its own asyncio loop: do the netlink work before ours starts.
        created = netns.create(args.netns, exist_ok=True)
        if created and not args.keep_netns:
            cleanup.callback(netns.delete, args.netns)
        if created:
            resolv = _private_resolver(args.netns)
            if not args.keep_netns:
                cleanup.callback(shutil.rmtree, resolv, ignore_errors=True)
        ns = netns.Namespace(args.netns)
        tap = ns.create_tap(args.tap, mtu=args.mtu, offload=not args.no_offload)
        cleanup.callback(tap.close)
        for peer in args.peer:
            ns.add_address(tap.name, peer)
        return asyncio.run(_serve(args, tap))


async def _serve(args: argparse.Namespace, tap: TapEndpoint) -> int:
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as cleanup:
        stack = new_stack(loop)
        _tcp_defaults(stack, args)
        link: LinkEndpoint = tap
        if args.loss or args.reorder:
            impair = Impairment(loss=args.loss / 100, reorder=args.reorder / 100)
            link = ImpairmentEndpoint(link, stack.clock, tx=impair, rx=impair, seed=args.seed)
        if args.pcap:
            link = SnifferEndpoint.to_file(link, stack.clock, str(args.pcap))
            cleanup.callback(link.close)
        nic = stack.create_nic(link, "tap0")
        for address in args.address:
            stack.add_address(nic.id, address, dad=False)  # the link is ours: no DAD
        tap.start(loop)
        cleanup.callback(tap.stop)
        await _start_services(stack, args, cleanup)
        ctl = control.ControlServer(stack, args.control or control.default_path("host",
                                                                                 args.netns))
        await ctl.start()
        cleanup.callback(ctl.close)
        if args.fetch:
            return await _fetch(stack, args)
        if args.ping:
            result = await ping.ping(stack, args.ping, args.count)
            if not args.quiet:
                print(f"ustack host: ping {result.summary(args.ping)}")
            return 0 if result.received else 1
        if args.demo:
            from ustack.cli.host_demo import self_check

            return await self_check(stack, args)
        if not args.quiet:
            _print_howto(args)
        await _wait_for_signal(stack if args.ss else None)
        if not args.quiet:
            print(f"\nustack host: {nic.stats['rx_packets']} packets in, "
                  f"{nic.stats['tx_packets']} out, {stack.stats['drops']} dropped")
    return 0


def _tcp_defaults(stack: Stack, args: argparse.Namespace) -> None:
    """--tcp-stack and --cc: the stack-wide defaults every new connection takes."""
    from ustack.cli.errors import UserError
    from ustack.transport.tcp import cc, stacks
    from ustack.wire.proto import IPProto

    config = stack.transport_protocols[IPProto.TCP].config  # type: ignore[attr-defined]
    if args.tcp_stack:
        try:
            config.tcp_stack = stacks.get(args.tcp_stack).name
        except KeyError as exc:
            raise UserError(str(exc)) from None
    if args.cc:
        if args.cc not in cc.available():
            raise UserError(f"--cc {args.cc}: one of {', '.join(cc.available())}")
        config.congestion_control = args.cc


async def _start_services(stack: Stack, args: argparse.Namespace, cleanup: AsyncExitStack,
                          ) -> None:
    """Each service listens on the wildcard address of every family ustack has."""
    hosts = sorted({"::" if ":" in a else "0.0.0.0" for a in args.address})
    starters: list[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]] = []
    for host in hosts:
        for port in args.udp_echo:
            starters.append((echo.udp_echo, (stack, port, host)))
        for port in args.tcp_echo:
            starters.append((echo.tcp_echo, (stack, port, host)))
        for port in args.tcp_discard:
            starters.append((echo.tcp_discard, (stack, port, host)))
        for port in args.tcp_source:
            starters.append((echo.tcp_source, (stack, port, host)))
    if args.http is not None:
        root = args.http_root
        if root is None and args.netns == DEMO_NETNS:
            root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="ustack-")))
            _demo_files(root)
        for host in hosts:
            starters.append((http.serve_files, (stack, root or Path.cwd(), args.http, host)))
    for start, start_args in starters:
        service = await start(*start_args)
        cleanup.callback(service.close)


def _private_resolver(name: str) -> Path:
    """/etc/netns/NAME/resolv.conf, bound in by 'ip netns exec': programs in the namespace
    (python's http.server looks its address up) must not query the machine's resolvers."""
    folder = Path("/etc/netns") / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "resolv.conf").write_text("# ustack: no resolver in this namespace\n")
    return folder


def _demo_files(root: Path) -> None:
    (root / "index.html").write_text("<h1>Hello from ustack</h1>\n")
    (root / "demo.bin").write_bytes(bytes(range(256)) * (40 * 4096))  # 40 MiB


def _print_howto(args: argparse.Namespace) -> None:
    ns = args.netns
    addrs = [a.split("/")[0] for a in args.address]
    print(f"ustack host: serving namespace {ns} on tap {args.tap} "
          f"(ustack {', '.join(args.address)}; kernel {', '.join(args.peer) or 'unconfigured'})")
    for addr in addrs:
        ping = "ping -6" if ":" in addr else "ping"
        print(f"  ip netns exec {ns} {ping} {addr}")
    if args.http is not None:
        host = addrs[0] if ":" not in addrs[0] else f"[{addrs[0]}]"
        print(f"  ip netns exec {ns} curl http://{host}:{args.http}/")
    print(f"  ustack ss --netns {ns}\nCtrl-C to stop.")


async def _wait_for_signal(stack: Stack | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 2.0)
        except TimeoutError:
            if stack is not None:
                from ustack.cli.ss import format_table

                print(format_table({"listen": control.listeners(stack),
                                    "connections": control.connections(stack)}), flush=True)


async def _fetch(stack: Stack, args: argparse.Namespace) -> int:
    result = await http.fetch(stack, args.fetch, args.output)
    if not args.quiet:
        print(f"ustack host: {args.fetch} -> {args.output}: HTTP {result.status}, "
              f"{result.length} bytes in {result.seconds:.2f} s "
              f"({result.rate / 1e6:.1f} Mbit/s)")
    return 0 if 200 <= result.status < 300 else 1
