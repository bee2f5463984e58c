# SPDX-License-Identifier: MIT
"""Show the connections of a running ustack (``ustack host``), like ``ss -ti``.

Examples:
  ustack ss                       # the demo host (namespace ustack-demo)
  ustack ss --netns NS            # the host serving namespace NS
  ustack ss --control PATH        # any ustack process by its control socket
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ustack import control
from ustack.cli.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--netns", default="ustack-demo", help="namespace served by ustack host")
    parser.add_argument("--control", type=Path, help="control socket path")


def format_table(reply: dict[str, Any]) -> str:
    lines = [f"{'State':<12}{'Recv-Q':>8}{'Send-Q':>8}  {'Local Address:Port':<28}"
             f"{'Peer Address:Port':<28}"]
    for row in reply.get("listen", []):
        lines.append(f"{'LISTEN':<12}{row['recv_q']:>8}{row['send_q']:>8}  "
                     f"{row['local']:<28}{'*:*':<28}")
    for row in reply.get("connections", []):
        lines.append(f"{row['state']:<12}{row['recv_q']:>8}{row['send_q']:>8}  "
                     f"{row['local']:<28}{row['peer']:<28}")
        lines.append("\t " + format_info(row))
    return "\n".join(lines)


def format_info(row: dict[str, Any]) -> str:
    parts = [row["congestion_control"]]
    if row["options"] & 4:
        parts.append(f"wscale:{row['snd_wscale']},{row['rcv_wscale']}")
    if row["options"] & 1:
        parts.append("ts")
    if row["options"] & 2:
        parts.append("sack")
    parts += [
        f"rto:{row['rto'] * 1000:.0f}", f"rtt:{row['rtt'] * 1000:.3f}/{row['rttvar'] * 1000:.3f}",
        f"mss:{row['snd_mss']}", f"rcvmss:{row['rcv_mss']}", f"cwnd:{row['cwnd']}",
    ]
    if row["ssthresh"] < 0x7FFFFFFF:
        parts.append(f"ssthresh:{row['ssthresh']}")
    parts += [f"bytes_acked:{row['bytes_acked']}", f"bytes_received:{row['bytes_received']}",
              f"segs_out:{row['segs_out']}",
              f"delivery_rate:{row['delivery_rate'] * 8 / 1e6:.1f}Mbps",
              f"retrans:{row['retransmits']}/{row['total_retrans']}",
              f"rcv_space:{row['rcv_space']}", f"ca:{row['ca_state']}"]
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    path = args.control or control.default_path("host", args.netns)
    try:
        reply = control.query(path, "ss")
    except (FileNotFoundError, ConnectionRefusedError):
        raise UserError(f"no ustack is running with control socket {path} "
                        "(start one with 'ustack host', or pass --control PATH)") from None
    print(format_table(reply))
    return 0
