# SPDX-License-Identifier: MIT
"""ustack host beside the Linux kernel, measured in one run, reported as ratios.

ustack serves a tap in namespace A (its services run in the ustack process); the
kernel reference is a veth pair between namespaces B (client) and C (server, the
same services in asyncio on kernel sockets). The same client programs (ping, and
bench/clients.py on kernel sockets) measure both. Needs root.

  python3 bench/netbench.py [--seconds 3] [--mtu 1500] [--mtu 65520] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ustack.testing.scratch import cpu_seconds, namespaces, sh

HERE = Path(__file__).resolve().parent
CLIENTS = HERE / "clients.py"
KERNEL_SERVERS = HERE / "kernel_servers.py"
TESTS = [
    ("icmp echo", "icmp", 0), ("udp echo 1 B", "udp_rr", 7), ("tcp 1 B req/resp", "tcp_rr", 7),
    ("tcp connect+1 B+close", "tcp_crr", 7), ("tcp bulk kernel->stack", "tcp_send", 9),
    ("tcp bulk stack->kernel", "tcp_recv", 19),
]


def ns_run(ns: str, *argv: str, timeout: float = 120) -> str:
    return sh("ip", "netns", "exec", ns, *argv, timeout=timeout)


@contextlib.contextmanager
def ustack_host(ns: str, mtu: int) -> Iterator[subprocess.Popen[str]]:
    ctl = Path(f"/tmp/ustack-bench-{secrets.token_hex(3)}.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ustack.cli.main", "host", "-q", "--netns", ns, "--mtu", str(mtu),
         "--address", "10.250.0.2/24", "--peer", "10.250.0.1/24", "--udp-echo", "7",
         "--tcp-echo", "7", "--tcp-discard", "9", "--tcp-source", "19", "--control", str(ctl)],
        text=True)
    try:
        deadline = time.monotonic() + 20
        while not ctl.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ustack host did not start")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def kernel_pair(client: str, server: str, mtu: int) -> Iterator[None]:
    veth = f"vb{secrets.token_hex(3)}"
    sh("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "p")
    sh("ip", "link", "set", veth, "netns", client)
    sh("ip", "link", "set", veth + "p", "netns", server)
    for ns, dev, addr in ((client, veth, "10.251.0.1/24"), (server, veth + "p", "10.251.0.2/24")):
        sh("ip", "-n", ns, "link", "set", dev, "mtu", str(mtu), "up")
        sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
    proc = subprocess.Popen(["ip", "netns", "exec", server, sys.executable, str(KERNEL_SERVERS),
                             "10.251.0.2"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def measure(ns: str, kind: str, addr: str, port: int, seconds: float) -> float:
    if kind == "icmp":
        count = str(int(4000 * seconds))
        out = ns_run(ns, "ping", "-f", "-q", "-n", "-c", count, addr)
        received = re.search(r"(\d+) received", out)
        took = re.search(r"time (\d+)ms", out)
        assert received is not None and took is not None, out
        got = int(received.group(1))
        ms = int(took.group(1))
        return got / (ms / 1000)
    out = ns_run(ns, sys.executable, str(CLIENTS), kind, addr, str(port), str(seconds))
    result = json.loads(out)
    if result.get("lost"):  # udp_rr: requests unanswered within the per-request timeout
        print(f"netbench: {kind} to {addr}: {result['lost']} of {result['sent']} lost",
              flush=True)
    return float(result["value"])


def run(seconds: float, mtus: list[int]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    tag = secrets.token_hex(2)
    a, b, c = f"nbA{tag}", f"nbB{tag}", f"nbC{tag}"
    with namespaces(a, b, c):
        for mtu in mtus:
            with ustack_host(a, mtu) as host, kernel_pair(b, c, mtu):
                for label, kind, port in TESTS:
                    cpu0 = cpu_seconds(host.pid)
                    start = time.monotonic()
                    ours = measure(a, kind, "10.250.0.2", port, seconds)
                    busy = (cpu_seconds(host.pid) - cpu0) / (time.monotonic() - start)
                    theirs = measure(b, kind, "10.251.0.2", port, seconds)
                    unit = "Mbit/s" if "bulk" in label else "/s"
                    row = {"test": label, "mtu": mtu, "ustack": ours, "kernel": theirs,
                           "ratio": ours / theirs if theirs else 0.0, "unit": unit,
                           "ustack_cpu": busy, "ustack_cpu_us": cpu_cost(busy, ours, unit)}
                    rows.append(row)
                    print(f"{label:<26} mtu {mtu:>5}  ustack {ours:>10.0f}  kernel "
                          f"{theirs:>10.0f} {unit:<7} ratio {row['ratio']:.3f}  "
                          f"(ustack cpu {busy:.0%}, {row['ustack_cpu_us']:.1f} us "
                          f"{cost_unit(unit)})", flush=True)
    return rows


def cpu_cost(busy: float, rate: float, unit: str) -> float:
    """ustack's CPU microseconds per operation (per MB for bulk): unlike the rate, it
    hardly moves when other work on the machine takes turns on the cores."""
    if rate <= 0:
        return 0.0
    per_second = rate / 8 if unit == "Mbit/s" else rate  # MB/s or operations/s
    return busy / per_second * 1e6


def cost_unit(unit: str) -> str:
    return "per MB" if unit == "Mbit/s" else "per op"


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| test | MTU | ustack | Linux kernel | ratio | ustack CPU | ustack CPU per op |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['test']} | {r['mtu']} | {r['ustack']:.0f} {r['unit']} | "
                     f"{r['kernel']:.0f} {r['unit']} | {r['ratio']:.3f} | "
                     f"{r['ustack_cpu']:.0%} | {r['ustack_cpu_us']:.1f} us "
                     f"{cost_unit(str(r['unit']))} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--mtu", type=int, action="append", help="repeatable (1500, 65520)")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("netbench: needs root (network namespaces, tap devices)", file=sys.stderr)
        return 2
    rows = run(args.seconds, args.mtu or [1500, 65520])
    print()
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
