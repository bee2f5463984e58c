# SPDX-License-Identifier: MIT
"""Simulate a bulk TCP transfer between two ustack stacks across a bottleneck link, on
a virtual clock (deterministic for a seed, faster than real time at modest rates),
and report goodput, utilisation, retransmissions, RTOs and queueing delay.

Examples:
  ustack sim --cc bbr --rate 100mbit --rtt 40ms --loss 1% --seconds 30
  ustack sim --cc cubic --stack default --queue 0.5bdp --pattern tail --csv cubic.csv
  ustack sim --cc bbr --rate 20mbit --queue 8bdp --png bbr.png
  ustack sim --cc newreno --loss 2% --pattern bursts --burst 4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ustack.sim.bench import SimConfig, Simulation, parse_rate, parse_time
from ustack.sim.bottleneck import PATTERNS
from ustack.transport.tcp import cc, stacks


def _percent(text: str) -> float:
    value = float(text.rstrip("%"))
    return value / 100 if text.endswith("%") or value > 1 else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--cc", default="cubic", choices=cc.available(), help="congestion control")
    add("--stack", default="rack", help=f"TCP stack ({', '.join(stacks.available())})")
    add("--rate", default="100mbit", help="bottleneck rate (default 100mbit)")
    add("--rtt", default="40ms", help="round-trip propagation delay (default 40ms)")
    add("--queue", default="1bdp",
        help="drop-tail queue: bytes, or a multiple of the BDP like 4bdp (default 1bdp)")
    add("--loss", default="0", help="mean loss rate, e.g. 1%% (default 0)")
    add("--pattern", default="random", choices=PATTERNS,
        help="loss pattern: random, bursts (Gilbert-Elliott) or tail (queue overflow only)")
    add("--burst", type=float, default=3.0, help="mean burst length in frames (bursts)")
    add("--reorder", default="0", help="share of frames held back, e.g. 1%%")
    add("--reorder-delay", default="5ms", help="how long a held-back frame waits")
    add("--seconds", type=float, default=10.0, help="simulated time (default 10)")
    add("--bytes", type=int, help="send this many bytes and stop (default: for --seconds)")
    add("--mtu", type=int, default=1500)
    add("--seed", type=int, default=1)
    add("--pacing", action="store_true", help="pace any congestion control")
    add("--interval", default="10ms", help="sampling period (default 10ms)")
    add("--csv", type=Path, metavar="FILE", help="write the time series as CSV")
    add("--png", type=Path, metavar="FILE", help="plot the time series (needs matplotlib)")
    add("--json", type=Path, metavar="FILE", help="write the summary as JSON")


def config_from(args: argparse.Namespace) -> SimConfig:
    from ustack.cli.errors import UserError

    try:
        rate = parse_rate(args.rate)
        rtt = parse_time(args.rtt)
        interval = parse_time(args.interval)
        reorder_delay = parse_time(args.reorder_delay)
        stacks.get(args.stack)
    except (ValueError, KeyError) as exc:
        raise UserError(str(exc)) from None
    queue = str(args.queue).lower()
    config = SimConfig(cc=args.cc, stack=args.stack, rate=rate, rtt=rtt,
                       loss=_percent(args.loss), pattern=args.pattern, burst=args.burst,
                       reorder=_percent(args.reorder), reorder_delay=reorder_delay,
                       seconds=args.seconds, transfer=args.bytes, mtu=args.mtu,
                       seed=args.seed, interval=interval, pacing=args.pacing)
    if queue.endswith("bdp"):
        config.queue_bdp = float(queue[:-3])
    else:
        config.queue_bytes = int(float(queue))
    if not 0 <= config.loss < 1:
        raise UserError(f"--loss {args.loss}: a rate below 100%")
    return config


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    result = Simulation(config).run()
    if not args.quiet:
        print(result.format_summary())
    if args.csv:
        result.write_csv(args.csv)
        if not args.quiet:
            print(f"  time series    {args.csv}")
    if args.png:
        from ustack.sim.plot import plot

        plot(result, args.png)
        if not args.quiet:
            print(f"  plot           {args.png}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.summary, indent=1))
    return 0 if result.summary["intact"] else 1
