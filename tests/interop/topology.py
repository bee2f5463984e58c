# SPDX-License-Identifier: MIT
"""The isolated world of the forwarding tests (DESIGN.md, "Network rule").

  outer (ustack runs here) --veth-- sink   (default route; forwards nothing; counts)
        |
        +--veth-- remote  (10.98.0.2, fd98::2: HTTP, DNS, echo, bulk sink/source)

The outer namespace's resolver is the remote DNS server, so ustack's DNS forwarder
relays there. Everything is created with unique names and removed on every exit.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ustack.testing.scratch import namespaces, sh

HERE = Path(__file__).resolve().parent
REMOTE4, REMOTE6 = "10.98.0.2", "fd98::2"
OUTER4, OUTER6 = "10.98.0.1", "fd98::1"


@dataclass
class World:
    outer: str
    sink: str
    remote: str
    www: Path
    sink_dev: str

    def run(self, *argv: str, timeout: float = 300, check: bool = True,
            user_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run in the outer namespace (where ustack runs)."""
        return subprocess.run(["ip", "netns", "exec", self.outer, *argv], capture_output=True,
                              text=True, timeout=timeout, check=check, env=user_env)

    def ustack_run(self, *argv: str, timeout: float = 600,
                   check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "ustack.cli.main", "run", *argv, timeout=timeout,
                        check=check)

    def sink_packets(self) -> int:
        """IP packets that reached the sink, not counting IPv6 neighbor/router discovery
        and MLD, which the kernel's own veth set-up sends."""
        out = sh("ip", "netns", "exec", self.sink, "nft", "list", "table", "inet", "sinkcount")
        return int(out.split("counter packets ")[1].split()[0])


def _veth(a: str, b: str, a_addrs: list[str], b_addrs: list[str]) -> tuple[str, str]:
    tag = secrets.token_hex(3)
    da, db = f"va{tag}", f"vb{tag}"
    sh("ip", "link", "add", da, "netns", a, "type", "veth", "peer", "name", db, "netns", b)
    for ns, dev, addrs in ((a, da, a_addrs), (b, db, b_addrs)):
        for addr in addrs:
            flags = ["nodad"] if ":" in addr else []
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev, *flags)
        sh("ip", "-n", ns, "link", "set", dev, "up")
    return da, db


@contextmanager
def world(www: Path) -> Iterator[World]:
    tag = f"{os.getpid() % 10000}{secrets.token_hex(2)}"
    outer, sink, remote = f"uo{tag}", f"us{tag}", f"ur{tag}"
    servers: subprocess.Popen[str] | None = None
    with namespaces(outer, sink, remote, resolver="# test namespace: no resolver\n"):
        try:
            _veth(outer, remote, [f"{OUTER4}/24", f"{OUTER6}/64"],
                  [f"{REMOTE4}/24", f"{REMOTE6}/64"])
            _, sink_dev = _veth(outer, sink, ["10.99.0.1/24", "fd99::1/64"],
                                ["10.99.0.2/24", "fd99::2/64"])
            sh("ip", "-n", outer, "route", "add", "default", "via", "10.99.0.2")
            sh("ip", "-n", outer, "-6", "route", "add", "default", "via", "fd99::2")
            for key in ("net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0"):
                sh("ip", "netns", "exec", sink, "sysctl", "-qw", key)
            sh("ip", "netns", "exec", outer, "sysctl", "-qw",
               "net.ipv4.ping_group_range=0 2147483647")
            nd = ("nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, "
                  "mld2-listener-report, mld-listener-report")
            rules = (f"table inet sinkcount {{\n chain in {{\n"
                     f"  type filter hook prerouting priority 0;\n"
                     f"  iifname \"{sink_dev}\" icmpv6 type {{ {nd} }} accept\n"
                     f"  iifname \"{sink_dev}\" meta nfproto {{ ipv4, ipv6 }} counter\n }}\n}}")
            rules_file = www / f"sink-{tag}.nft"
            rules_file.write_text(rules + "\n")
            sh("ip", "netns", "exec", sink, "nft", "-f", str(rules_file))
            (Path("/etc/netns") / outer / "resolv.conf").write_text(f"nameserver {REMOTE4}\n")
            servers = subprocess.Popen(["ip", "netns", "exec", remote, sys.executable,
                                        str(HERE / "remote_servers.py"), str(www)],
                                       stdout=subprocess.PIPE, text=True)
            assert servers.stdout is not None
            deadline = time.monotonic() + 15
            while servers.stdout.readline().strip() != "ready":
                assert time.monotonic() < deadline and servers.poll() is None, "servers failed"
            yield World(outer, sink, remote, www, sink_dev)
        finally:
            if servers is not None:
                servers.terminate()
                servers.wait(timeout=10)
