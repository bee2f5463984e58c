# SPDX-License-Identifier: MIT
"""Modern TCP against the Linux kernel, over a lossy path, in one run.

ustack as the sender (``ustack host --tcp-stack rack --cc cubic|bbr`` serving a file
over HTTP on a tap) and the Linux kernel as the sender (a file server on kernel
sockets with TCP_CONGESTION cubic|bbr, over a veth) deliver the same file to the
same receiving namespace, whose input chain drops N% of the senders' segments at
random with nftables (``numgen random mod 100 < N drop``). The receiver checks the
sha256 of every download and reports goodput side by side. Offloads are off on both
paths (ustack host --no-offload; ethtool on the veth), so the drop hits 1500-byte
segments. Needs root.

Expect ustack to be bound by the CPU (Python's cost per 1500-byte segment, a few
hundred Mbit/s) long before its congestion control limits it; the kernel reaches
Gbit/s over the same loss rate.

  python3 bench/moderntcp.py [--size-mib 32] [--loss 1 --loss 3] [--json FILE]

Network rule: traffic only between namespaces this script creates (no default
routes, private resolv.conf); all of them, with their tap, veth and nftables
table, are removed on every exit path.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ustack.testing.scratch import namespaces, sh

HERE = Path(__file__).resolve()
USTACK_ADDR, RECV_TAP_ADDR = "10.252.0.2", "10.252.0.1"
KERNEL_ADDR, RECV_VETH_ADDR = "10.253.0.2", "10.253.0.1"
USTACK_PORT, KERNEL_PORT = 8080, 8081
CASES = [("ustack", "rack", "cubic"), ("ustack", "rack", "bbr"), ("ustack", "default", "cubic"),
         ("linux", "-", "cubic"), ("linux", "-", "bbr")]


@contextlib.contextmanager
def veth(sender: str, receiver: str) -> Iterator[None]:
    """The kernel sender's path: a veth pair (deleted with the namespaces)."""
    name = f"vm{secrets.token_hex(3)}"
    sh("ip", "link", "add", name, "type", "veth", "peer", "name", name + "p")
    sh("ip", "link", "set", name, "netns", sender)
    sh("ip", "link", "set", name + "p", "netns", receiver)
    for ns, dev, addr in ((sender, name, KERNEL_ADDR), (receiver, name + "p", RECV_VETH_ADDR)):
        sh("ip", "-n", ns, "link", "set", dev, "mtu", "1500", "up")
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        # segments, not 64 kB TSO/GRO aggregates, must meet the nftables drop (as on the
        # tap, where ustack host runs with --no-offload)
        sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro",
           "off", check=False)
    yield


def set_loss(ns: str, percent: int) -> None:
    """Drop ``percent``% of the data segments arriving from either sender."""
    sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "moderntcp", check=False)
    if not percent:
        return
    rules = f"""
table inet moderntcp {{
  chain input {{
    type filter hook input priority 0; policy accept;
    tcp sport {{ {USTACK_PORT}, {KERNEL_PORT} }} numgen random mod 100 < {percent} drop
  }}
}}
"""
    sh("ip", "netns", "exec", ns, "nft", "-f", "-", input=rules)


@contextlib.contextmanager
def ustack_sender(ns: str, root: Path, cc: str, stack: str) -> Iterator[subprocess.Popen[str]]:
    ctl = Path(tempfile.gettempdir()) / f"ustack-mtcp-{secrets.token_hex(3)}.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ustack.cli.main", "host", "-q", "--netns", ns, "--mtu", "1500",
         "--tap", "umt0", "--no-offload", "--address", f"{USTACK_ADDR}/24",
         "--peer", f"{RECV_TAP_ADDR}/24",
         "--http", str(USTACK_PORT), "--http-root", str(root), "--tcp-stack", stack,
         "--cc", cc, "--control", str(ctl)], text=True)
    try:
        deadline = time.monotonic() + 20
        while not ctl.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ustack host did not start")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        ctl.unlink(missing_ok=True)


@contextlib.contextmanager
def kernel_sender(ns: str, path: Path, cc: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(HERE), "serve",
                             KERNEL_ADDR, str(KERNEL_PORT), str(path), cc],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- the two ends (run inside the namespaces) ---------------------------------------------------


def serve(addr: str, port: int, path: str, cc: str) -> None:
    """A kernel-socket HTTP/1.0 file server whose connections use congestion control ``cc``."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    srv.bind((addr, port))
    srv.listen(8)
    print("ready", flush=True)
    size = os.path.getsize(path)
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
        with conn, open(path, "rb") as f:
            conn.recv(4096)
            conn.sendall(f"HTTP/1.0 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
            conn.sendfile(f)


def fetch(addr: str, port: int, name: str) -> dict[str, object]:
    """GET /name; the body's sha256 and goodput (from the first body byte to the last)."""
    s = socket.create_connection((addr, port), timeout=60)
    s.sendall(f"GET /{name} HTTP/1.0\r\nHost: {addr}\r\n\r\n".encode())
    digest = hashlib.sha256()
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(65536)
        if not chunk:
            break
        head += chunk
    header, _, body = head.partition(b"\r\n\r\n")
    start = time.monotonic()
    digest.update(body)
    got = len(body)
    buf = bytearray(1 << 20)
    while True:
        n = s.recv_into(buf)
        if not n:
            break
        digest.update(memoryview(buf)[:n])
        got += n
    elapsed = time.monotonic() - start
    s.close()
    return {"status": header.split(b" ", 2)[1].decode() if header else "?", "bytes": got,
            "sha256": digest.hexdigest(), "seconds": elapsed,
            "mbit": got * 8 / max(elapsed, 1e-9) / 1e6}


def client(ns: str, addr: str, port: int, name: str) -> dict[str, object]:
    out = sh("ip", "netns", "exec", ns, sys.executable, str(HERE), "fetch", addr, str(port),
             name, timeout=600)
    row: dict[str, object] = json.loads(out)
    return row


# --- the bench ----------------------------------------------------------------------------------


def run(size_mib: int, losses: list[int], cases: list[tuple[str, str, str]] = CASES,
        ) -> list[dict[str, object]]:
    tag = secrets.token_hex(2)
    recv, ksend, usend = f"mtR{tag}", f"mtK{tag}", f"mtU{tag}"
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="moderntcp-") as tmp:
        root = Path(tmp)
        blob = root / "blob.bin"
        with blob.open("wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
        want = hashlib.sha256(blob.read_bytes()).hexdigest()
        # ustack host creates the tap in the receiving namespace, which it serves
        with namespaces(recv, ksend, usend), veth(ksend, recv):
            for loss in losses:
                for who, stack, cc in cases:
                    set_loss(recv, 0)
                    if who == "ustack":
                        ctx: contextlib.AbstractContextManager[object] = \
                            ustack_sender(recv, root, cc, stack)
                        addr, port = USTACK_ADDR, USTACK_PORT
                    else:
                        ctx = kernel_sender(ksend, blob, cc)
                        addr, port = KERNEL_ADDR, KERNEL_PORT
                    with ctx:
                        set_loss(recv, loss)
                        got = client(recv, addr, port, blob.name)
                        set_loss(recv, 0)
                    row = {"sender": who, "stack": stack, "cc": cc, "loss": loss,
                           "mbit": got["mbit"], "seconds": got["seconds"],
                           "sha256_ok": got["sha256"] == want, "bytes": got["bytes"]}
                    rows.append(row)
                    print(f"loss {loss}%  {who:6s} {stack:5s} {cc:6s} {got['mbit']:9.1f} Mbit/s "
                          f"in {got['seconds']:6.2f} s  sha256 "
                          f"{'ok' if row['sha256_ok'] else 'MISMATCH'}", flush=True)
    return rows


def number(row: dict[str, object], key: str) -> float:
    """A numeric column of a result row (the rows mix numbers, strings and flags)."""
    value = row[key]
    assert isinstance(value, int | float), (key, value)
    return float(value)


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| loss | sender | stack | cc | goodput | vs Linux same cc | sha256 |",
             "|---:|---|---|---|---:|---:|---|"]
    for r in rows:
        ref = next((x for x in rows if x["sender"] == "linux" and x["cc"] == r["cc"]
                    and x["loss"] == r["loss"]), None)
        ratio = f"{number(r, 'mbit') / number(ref, 'mbit'):.2f}" if ref and ref["mbit"] else "-"
        lines.append(f"| {r['loss']}% | {r['sender']} | {r['stack']} | {r['cc']} | "
                     f"{number(r, 'mbit'):.1f} Mbit/s | {ratio} | "
                     f"{'ok' if r['sha256_ok'] else 'MISMATCH'} |")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "fetch":
        print(json.dumps(fetch(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--loss", type=int, action="append", help="percent (repeatable)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("moderntcp: needs root (namespaces, tap, nftables)", file=sys.stderr)
        return 2
    rows = run(args.size_mib, args.loss or [1, 3])
    print()
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["sha256_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
