# SPDX-License-Identifier: MIT
"""The TCP data path's Python cost alone: two stacks in one process over an in-memory
link on a virtual clock (no tap, no kernel, no event loop), so the figures move only
with ustack's own code. Reports CPU microseconds (process time, so a busy machine
disturbs it less than wall time) per 1-byte round trip and per 64 KiB of bulk data
(1448-byte segments at MTU 1500), both stacks' work together, the best of a few runs.

  python3 bench/microbench.py [--rounds 20000] [--megabytes 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from typing import Any

from ustack.testing.pair import B4, StackPair, make_pair

PORT = 5001


def connected(mtu: int) -> tuple[StackPair, Any, Any]:
    p = make_pair(mtu=mtu)
    srv = p.b.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("0.0.0.0", PORT))
    srv.listen(8)
    cli = p.a.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.setblocking(False)
    try:
        cli.connect((B4, PORT))
    except BlockingIOError:
        pass
    p.clock.advance(0.01)
    srv.setblocking(False)
    conn, _ = srv.accept()
    conn.setblocking(False)
    for s in (cli, conn):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return p, cli, conn


def _idle(p: StackPair) -> None:
    """Nothing to read yet: run queued work, or move time to the next timer."""
    clock = p.clock
    if clock.run_ready():
        return
    deadline = clock.wheel.next_deadline()
    clock.advance(max(deadline - clock.now(), 1e-6) if deadline is not None else 1e-5)


def _recv_some(p: StackPair, sock: Any, size: int) -> bytes:
    while True:
        try:
            return bytes(sock.recv(size))
        except BlockingIOError:
            _idle(p)


def round_trips(rounds: int) -> float:
    """Microseconds of Python per 1-byte request and its echo."""
    p, cli, conn = connected(1500)
    start = time.process_time()
    for _ in range(rounds):
        cli.send(b"x")
        conn.send(_recv_some(p, conn, 16))
        _recv_some(p, cli, 16)
    return (time.process_time() - start) / rounds * 1e6


def bulk(megabytes: int, mtu: int = 1500) -> float:
    """Microseconds per 64 KiB moved from one stack to the other."""
    p, cli, conn = connected(mtu)
    block = bytes(1 << 16)
    total = megabytes << 20
    sent = got = 0
    start = time.process_time()
    while got < total:
        while sent < total:
            try:
                n = cli.send(block[:min(len(block), total - sent)])
            except BlockingIOError:
                break
            if not n:
                break
            sent += n
        try:
            got += len(conn.recv(1 << 18))
        except BlockingIOError:
            _idle(p)
    return (time.process_time() - start) / (total >> 16) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20000)
    parser.add_argument("--megabytes", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    rr = min(round_trips(args.rounds) for _ in range(args.repeat))
    bk = min(bulk(args.megabytes) for _ in range(args.repeat))
    print(f"tcp 1 B round trip      {rr:8.1f} us")
    print(f"tcp bulk per 64 KiB     {bk:8.1f} us  ({65536 / bk:.0f} MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
