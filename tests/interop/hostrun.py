# SPDX-License-Identifier: MIT
"""Run ``ustack host`` as a subprocess against a namespace the test owns.

Network rule: traffic only between a namespace created here and ustack on its
tap. The namespace has no default route and a private resolv.conf, and is
removed (with its /etc/netns folder) on every exit path.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ustack import control
from ustack.testing.scratch import namespaces

NEEDS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or shutil.which("ip") is None,
    reason="needs root, /dev/net/tun and iproute2")
USTACK = [sys.executable, "-m", "ustack.cli.main"]


def unique_name(prefix: str = "ush") -> str:
    return f"{prefix}-{os.getpid() % 100000}-{secrets.token_hex(2)}"


@contextmanager
def namespace() -> Iterator[str]:
    """A fresh namespace with lo up and a private resolver; deleted afterwards."""
    name = unique_name()
    with namespaces(name, resolver="# test namespace: no resolver\n"):
        yield name


def in_ns(ns: str, *argv: str, timeout: float = 120, check: bool = True,
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=timeout, check=check)


class Host:
    """A running ``ustack host``: its namespace, addresses and control socket."""

    def __init__(self, ns: str, mtu: int, index: int, control_path: Path,
                 proc: subprocess.Popen[str]) -> None:
        self.ns = ns
        self.mtu = mtu
        self.v4 = f"10.{200 + index}.0.2"
        self.peer4 = f"10.{200 + index}.0.1"
        self.v6 = f"fd00:{index}::2"
        self.peer6 = f"fd00:{index}::1"
        self.control = control_path
        self.proc = proc

    def ss(self) -> dict[str, list[dict[str, object]]]:
        sockets: dict[str, list[dict[str, object]]] = control.query(self.control, "ss")
        return sockets

    def stats(self) -> dict[str, dict[str, int]]:
        counters: dict[str, dict[str, int]] = control.query(self.control, "stats")
        return counters


def host_args(ns: str, index: int, mtu: int) -> list[str]:
    return ["host", "--netns", ns, "--mtu", str(mtu), "--tap", "ustk0",
            "--address", f"10.{200 + index}.0.2/24", "--address", f"fd00:{index}::2/64",
            "--peer", f"10.{200 + index}.0.1/24", "--peer", f"fd00:{index}::1/64"]


@contextmanager
def ustack_host(ns: str, *extra: str, mtu: int = 1500, index: int = 1,
                tmp: Path) -> Iterator[Host]:
    """Start ``ustack host`` serving ``ns`` and wait until it answers on its control socket."""
    ctl = tmp / f"ctl-{secrets.token_hex(3)}.sock"
    log = (tmp / "host.log").open("w")
    proc = subprocess.Popen([*USTACK, *host_args(ns, index, mtu), "--control", str(ctl),
                             *extra], stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ustack host exited: {(tmp / 'host.log').read_text()}")
            if ctl.exists():
                try:
                    control.query(ctl, "stats", timeout=2)
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("ustack host did not start")
            time.sleep(0.05)
        yield Host(ns, mtu, index, ctl, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def make_blob(path: Path, size: int) -> str:
    """A file of ``size`` pseudo-random bytes; returns its sha256."""
    block = os.urandom(1 << 20)
    with path.open("wb") as f:
        for i in range(size >> 20):
            f.write(block[i % 7:] + block[:i % 7])
    return sha256_file(path)
