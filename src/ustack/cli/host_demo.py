# SPDX-License-Identifier: MIT
"""``ustack host --demo``: talk to the ustack host from the Linux kernel's side of the tap
with real programs (ping, curl, python sockets, python's http.server) and report."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import ipaddress
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from ustack.apps import http, ping
from ustack.stack import Stack

UDP_PROBE = """
import socket, sys, time
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2); s.connect((sys.argv[1], int(sys.argv[2])))
n = int(sys.argv[3]); got = 0; t = time.monotonic()
for i in range(n):
    s.send(i.to_bytes(4, 'big') * 8)
    try:
        got += s.recv(64) == i.to_bytes(4, 'big') * 8
    except socket.timeout:
        pass
print(got, n, round(n / (time.monotonic() - t)))
"""

TCP_PROBE = """
import socket, sys, hashlib, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
data = bytes(range(256)) * (int(sys.argv[3]) // 256)
threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR))).start()
got = bytearray()
while chunk := s.recv(1 << 16):
    got += chunk
print(hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), len(got))
"""


async def _run(netns: str, *argv: str, timeout: float = 60.0) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, "timed out"
    return proc.returncode or 0, out.decode(errors="replace")


def _ping_summary(output: str) -> str:
    loss = re.search(r"(\d+)% packet loss", output)
    rtt = re.search(r"= [\d.]+/([\d.]+)/", output)
    return (f"{100 - int(loss.group(1)) if loss else 0}% replies"
            + (f", avg rtt {rtt.group(1)} ms" if rtt else ""))


async def self_check(stack: Stack, args: argparse.Namespace) -> int:
    ns = args.netns
    ours = [ipaddress.ip_interface(a).ip for a in args.address]
    peers = [ipaddress.ip_interface(a).ip for a in args.peer]
    v4 = next((str(a) for a in ours if a.version == 4), None)
    v6 = next((str(a) for a in ours if a.version == 6), None)
    results: list[tuple[str, bool, str]] = []

    async def check_ping(name: str, *argv: str) -> None:
        code, out = await _run(ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", *argv)
        results.append((name, code == 0, _ping_summary(out)))

    await asyncio.sleep(0.2)  # let the kernel finish bringing the tap up
    if v4:
        await check_ping(f"ping {v4}", v4)
        if args.mtu < 4000:
            await check_ping(f"ping -s 4000 {v4} (fragmented)", "-s", "4000", v4)
    if v6:
        await check_ping(f"ping -6 {v6}", "-6", v6)
    for port in args.udp_echo[:1]:
        for addr in filter(None, (v4, v6)):
            code, out = await _run(ns, sys.executable, "-c", UDP_PROBE, addr, str(port), "1000")
            fields = out.split()
            ok = code == 0 and len(fields) == 3 and fields[0] == fields[1]
            detail = f"{fields[0]}/{fields[1]} echoed, {fields[2]} round trips/s" \
                if len(fields) == 3 else out.strip()[-200:]
            results.append((f"udp echo {addr}:{port}", ok, detail))
    for port in args.tcp_echo[:1]:
        for addr in filter(None, (v4, v6)):
            code, out = await _run(ns, sys.executable, "-c", TCP_PROBE, addr, str(port),
                                   str(4 << 20))
            results.append((f"tcp echo {addr}:{port}", out.startswith("True"), out.strip()))
    if args.http is not None and v4:
        results.append(await _curl(ns, v4, args))
    for peer in peers:
        pinged = await ping.ping(stack, str(peer), 3)
        results.append((f"ustack pings {peer}", pinged.received == 3, pinged.summary(str(peer))
                        .split(": ", 1)[1]))
    if peers and v4:
        results.append(await _fetch_from_kernel(stack, ns, str(peers[0]) if peers[0].version == 4
                                                else None))
    width = max(len(name) for name, _, _ in results)
    for name, ok, detail in results:
        print(f"  {'ok  ' if ok else 'FAIL'} {name:<{width}}  {detail}")
    passed = all(ok for _, ok, _ in results)
    print(f"ustack host --demo: {sum(ok for _, ok, _ in results)}/{len(results)} checks passed")
    return 0 if passed else 1


async def _curl(ns: str, addr: str, args: argparse.Namespace) -> tuple[str, bool, str]:
    url = f"http://{addr}:{args.http}/demo.bin"
    expected = hashlib.sha256(bytes(range(256)) * (40 * 4096)).hexdigest()
    code, out = await _run(ns, "sh", "-c", f"curl -sS --max-time 60 {url} | sha256sum && "
                           f"curl -sS --max-time 60 -o /dev/null -w '%{{speed_download}}' {url}")
    lines = out.split()
    ok = code == 0 and bool(lines) and expected in out
    speed = float(lines[-1]) * 8 / 1e6 if lines and re.match(r"^[\d.]+$", lines[-1]) else 0.0
    return (f"curl {url}", ok, f"sha256 {'matches' if ok else 'DIFFERS'}, {speed:.0f} Mbit/s")


async def _fetch_from_kernel(stack: Stack, ns: str, peer: str | None) -> tuple[str, bool, str]:
    if peer is None:
        return ("ustack fetch", False, "no IPv4 peer address")
    with tempfile.TemporaryDirectory(prefix="ustack-demo-") as tmp:
        body = os.urandom(8 << 20)
        Path(tmp, "blob.bin").write_bytes(body)
        server = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", ns, sys.executable, "-m", "http.server", "--bind", peer,
            "--directory", tmp, "8000", stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    result = await http.fetch(stack, f"http://{peer}:8000/blob.bin",
                                              Path(tmp, "got.bin"))
                    break
                except ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            same = Path(tmp, "got.bin").read_bytes() == body
            return (f"ustack fetch http://{peer}:8000/", same and result.status == 200,
                    f"HTTP {result.status}, sha256 {'matches' if same else 'DIFFERS'}, "
                    f"{result.rate / 1e6:.0f} Mbit/s")
        finally:
            server.terminate()
            await server.wait()
