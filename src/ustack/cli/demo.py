# SPDX-License-Identifier: MIT
"""ustack's main job, shown end to end with nothing to prepare.

A web server starts on the host's loopback. A guest namespace is started with
networking through ustack (as 'ustack run' does); inside it, a program downloads
a file from the host's server through the gateway address, then serves a file
of its own, which the host downloads through a port forwarded into the guest.
Both sha256 sums are checked and the rates printed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from ustack.cli.errors import UserError
from ustack.cli.serve import serve_guest_link
from ustack.forward.config import GuestNetwork
from ustack.forward.guest import Guest, spawn_guest

GUEST_SCRIPT = r"""
import hashlib, http.server, os, sys, time, urllib.request, functools, threading
url, size = sys.argv[1], int(sys.argv[2])
t = time.monotonic()
data = urllib.request.urlopen(url, timeout=60).read()
took = time.monotonic() - t
os.makedirs("/tmp/ustack-demo-guest", exist_ok=True)
blob = os.urandom(size)
open("/tmp/ustack-demo-guest/guest.bin", "wb").write(blob)
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
handler = functools.partial(Quiet, directory="/tmp/ustack-demo-guest")
server = http.server.ThreadingHTTPServer(("0.0.0.0", 8080), handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print("READY", hashlib.sha256(data).hexdigest(), len(data), took,
      hashlib.sha256(blob).hexdigest(), flush=True)
sys.stdin.readline()
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=64, metavar="MIB",
                        help="size of each file, in MiB (default 64)")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(args: argparse.Namespace) -> int:
    size = args.size << 20
    with tempfile.TemporaryDirectory(prefix="ustack-demo-") as tmp:
        host_blob = os.urandom(size)
        Path(tmp, "host.bin").write_bytes(host_blob)
        handler = functools.partial(_QuietHandler, directory=tmp)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        forwarded = _free_port()
        net = GuestNetwork()
        print(f"ustack demo: a web server on the host at 127.0.0.1:{port}; a guest namespace "
              f"behind ustack (guest {net.guest4}, gateway {net.gateway4})")
        try:
            guest = spawn_guest([sys.executable, "-c", GUEST_SCRIPT,
                                 f"http://{net.gateway4}:{port}/host.bin", str(size)], net,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except OSError as exc:
            raise UserError(str(exc)) from None
        with guest:
            try:
                ok = asyncio.run(_demo(guest, net, forwarded, host_blob, size))
            finally:
                server.shutdown()
    return 0 if ok else 1


async def _demo(guest: Guest, net: GuestNetwork, forwarded: int, host_blob: bytes,
                size: int) -> bool:
    loop = asyncio.get_running_loop()
    assert guest.stdout is not None and guest.stdin is not None
    async with serve_guest_link(guest.tap, net, [(forwarded, 8080)], [],
                                router_advertisements=False) as served:
        guest.tap.start(loop)
        guest.start()
        line = await loop.run_in_executor(None, guest.stdout.readline)
        fields = line.decode().split()
        if len(fields) != 5 or fields[0] != "READY":
            print(f"ustack demo: the guest failed: {line!r}")
            return False
        _, got_sha, got_len, took, guest_sha = fields
        up_ok = got_sha == hashlib.sha256(host_blob).hexdigest() and int(got_len) == size
        start = time.monotonic()
        body = await loop.run_in_executor(None, _download,
                                          f"http://127.0.0.1:{forwarded}/guest.bin")
        down = time.monotonic() - start
        down_ok = hashlib.sha256(body).hexdigest() == guest_sha
        guest.stdin.write(b"done\n")
        guest.stdin.flush()
        status = await guest.wait()
        mib = size >> 20
        print(f"  guest <- host   http://{net.gateway4}:.../host.bin  {mib} MiB  sha256 "
              f"{'ok' if up_ok else 'MISMATCH'}  {size * 8 / float(took) / 1e6:8.0f} Mbit/s")
        print(f"  host  <- guest  http://127.0.0.1:{forwarded}/guest.bin (-t {forwarded}:8080)"
              f"  {mib} MiB  sha256 {'ok' if down_ok else 'MISMATCH'}  "
              f"{len(body) * 8 / down / 1e6:8.0f} Mbit/s")
        print(f"ustack demo: {'both transfers intact' if up_ok and down_ok else 'FAILED'}; "
              f"{served.summary()}; guest exited with {status}")
        return up_ok and down_ok and status == 0


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        return bytes(response.read())
