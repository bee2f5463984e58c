# SPDX-License-Identifier: MIT
"""Run packetdrill scripts against ustack, on a virtual clock (no tun device, no root).

Each script runs against a fresh stack with the chosen personality. The report
counts pass, fail (with the first mismatch: expected vs got) and unsupported per
directory. Exit status: 0 when every script passed, 1 otherwise.

Examples:
  ustack pktdrill tests/conformance/scripts/freebsd
  ustack pktdrill --personality linux tests/conformance/scripts/linux
  ustack pktdrill --mode both --summary ../shared/conformance/freebsd-tcp-testsuite
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ustack.cli.errors import UserError
from ustack.testing.packetdrill import Mode, RunOptions, run_file
from ustack.testing.packetdrill.report import find_scripts, format_report, to_json
from ustack.transport.tcp.personality import PERSONALITIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="FILE|DIR",
                        help="scripts, or directories searched for *.pkt")
    parser.add_argument("--mode", choices=("strict", "relaxed", "both"), default="strict",
                        help="strict: every field, option order, window and timing; relaxed: "
                        "RFC behaviour only (default: strict)")
    parser.add_argument("--personality", choices=sorted(PERSONALITIES), default="freebsd",
                        help="the stack's defaults, and the system #ifdef sees (default: "
                        "freebsd)")
    parser.add_argument("-D", "--define", action="append", default=[], metavar="NAME",
                        help="a name #ifdef sees as defined (default: the personality's "
                        "system, e.g. FreeBSD)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    parser.add_argument("--summary", action="store_true",
                        help="only the per-directory table, not each failure")


def run(args: argparse.Namespace) -> int:
    scripts = find_scripts(args.paths)
    missing = [p for p in scripts if not p.is_file()]
    if missing:
        raise UserError(f"no such script: {missing[0]}")
    if not scripts:
        raise UserError("no *.pkt scripts found")
    root = os.path.commonpath([str(p.parent.resolve()) for p in scripts])
    modes = [Mode.STRICT, Mode.RELAXED] if args.mode == "both" else [Mode(args.mode)]
    ok = True
    reports = {}
    for mode in modes:
        options = RunOptions(mode=mode, personality=args.personality,
                             defines=tuple(args.define))
        results = [run_file(path.resolve(), options) for path in scripts]
        ok = ok and all(r.passed for r in results)
        title = f"{mode.value} mode, {args.personality} personality, {len(scripts)} scripts"
        print(format_report(results, root, title, show_failures=not args.summary))
        print()
        reports[mode.value] = to_json(results, root)
    if args.json:
        args.json.write_text("{" + ",".join(f'"{m}": {j}' for m, j in reports.items()) + "}\n")
    return 0 if ok else 1
