# SPDX-License-Identifier: MIT
"""Scratch network namespaces for tests and benchmarks, removed on every exit path.

Each gets ``lo`` up and a private resolv.conf (bound in by ``ip netns exec``), so
programs that look names up on their own (python's http.server) query nobody.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

NETNS_ETC = Path("/etc/netns")


def sh(*argv: str, check: bool = True, timeout: float = 120, input: str | None = None) -> str:
    """Run a command; its stdout (raises CalledProcessError when ``check`` and it fails)."""
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout,
                          input=input).stdout


def unique_name(prefix: str) -> str:
    """A namespace or device name unlikely to clash (at most 15 bytes for devices)."""
    return f"{prefix}{os.getpid() % 1000}{secrets.token_hex(2)}"[:15]


@contextlib.contextmanager
def namespaces(*names: str, resolver: str = "# scratch namespace: no resolver\n",
               ) -> Iterator[None]:
    """Create the named namespaces; delete them, and their /etc/netns folders, after."""
    try:
        for name in names:
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
            etc = NETNS_ETC / name
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(resolver)
        yield
    finally:
        for name in names:
            sh("ip", "netns", "del", name, check=False)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
