# SPDX-License-Identifier: MIT
"""``ustack COMMAND ...``: the entry point and the list of commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ustack import __version__
from ustack.cli.errors import UserError

#: command name -> module under ustack.cli with add_arguments(parser) and run(args) -> int
COMMANDS = {
    "demo": "Show ustack's main job end to end: a guest reaches the host and is reached.",
    "run": "Run a command with networking through ustack (unprivileged, like pasta).",
    "passt": "Serve a VM's network over qemu's stream socket (like passt).",
    "host": "Serve a tap device in a network namespace with a ustack host (ping, UDP, TCP).",
    "ss": "Show the connections of a running ustack, like ss -ti.",
    "sim": "Simulate TCP across a bottleneck on a virtual clock (CC, RACK, pacing).",
    "pktdrill": "Run packetdrill scripts against ustack on a virtual clock.",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ustack", description="A userspace TCP/IP stack, and tools built on it.")
    parser.add_argument("--version", action="version", version=f"ustack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in COMMANDS.items():
        module = importlib.import_module(f"ustack.cli.{name}")
        cmd = sub.add_parser(name, help=summary, description=module.__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        cmd.add_argument("-v", "--verbose", action="count", default=0,
                         help="more output (-vv for debug logs)")
        cmd.add_argument("-q", "--quiet", action="store_true", help="only errors")
        module.add_arguments(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.ERROR if args.quiet else (logging.DEBUG if args.verbose > 1 else
                                             logging.INFO if args.verbose else logging.WARNING)
    logging.basicConfig(level=level, format="ustack: %(message)s")
    try:
        return int(args.run(args))
    except UserError as exc:
        print(f"ustack {args.command}: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(f"ustack {args.command}: {exc.strerror or exc} (run as root, or see "
              "'ustack run' for unprivileged use)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
