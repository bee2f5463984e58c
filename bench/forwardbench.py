# SPDX-License-Identifier: MIT
"""``ustack run`` beside pasta and slirp4netns, measured side by side in one run.

Each translator serves a guest namespace of its own (attached by path: ``ustack run
--netns``, ``pasta --netns``, ``slirp4netns --netns-type=path``), all running in one
outer namespace whose default route leads to a sink, with the servers (iperf3, and
echo servers on kernel sockets) in a remote namespace. The same clients run in each
guest: iperf3 both ways, 1-byte TCP and UDP request/response, connect+close. The
translator's CPU use is read from /proc during each measurement. Needs root; installs
iperf3, passt (pasta) and slirp4netns with apt-get if they are missing.

  python3 bench/forwardbench.py [--seconds 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ustack.testing.scratch import cpu_seconds, sh

HERE = Path(__file__).resolve().parent
REMOTE = "10.98.0.2"
TESTS = [("iperf3 guest->remote", "up", "Mbit/s"), ("iperf3 remote->guest", "down", "Mbit/s"),
         ("tcp 1 B req/resp", "tcp_rr", "/s"), ("udp 1 B req/resp", "udp_rr", "/s"),
         ("tcp connect+1 B+close", "tcp_crr", "/s")]


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("iperf3", "iperf3"), ("pasta", "passt"),
                                     ("slirp4netns", "slirp4netns")) if not shutil.which(tool)]
    if missing:
        print(f"forwardbench: installing {' '.join(missing)}", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env,
                       stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def world() -> Iterator[dict[str, str]]:
    tag = secrets.token_hex(2)
    names = {"outer": f"fbO{tag}", "sink": f"fbS{tag}", "remote": f"fbR{tag}",
             "ustack": f"fbU{tag}", "pasta": f"fbP{tag}", "slirp4netns": f"fbL{tag}"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in names.values():
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
            etc = Path("/etc/netns") / name
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text("nameserver 10.98.0.2\n")
        for peer, a, b in (("remote", "10.98.0.1/24", "10.98.0.2/24"),
                           ("sink", "10.99.0.1/24", "10.99.0.2/24")):
            dev = f"fb{peer[0]}{tag}"
            sh("ip", "link", "add", dev, "netns", names["outer"], "type", "veth", "peer", "name",
               dev + "p", "netns", names[peer])
            sh("ip", "-n", names["outer"], "addr", "add", a, "dev", dev)
            sh("ip", "-n", names[peer], "addr", "add", b, "dev", dev + "p")
            sh("ip", "-n", names["outer"], "link", "set", dev, "up")
            sh("ip", "-n", names[peer], "link", "set", dev + "p", "up")
        sh("ip", "-n", names["outer"], "route", "add", "default", "via", "10.99.0.2")
        sh("ip", "netns", "exec", names["outer"], "sysctl", "-qw",
           "net.ipv4.ping_group_range=0 2147483647")
        procs.append(subprocess.Popen(["ip", "netns", "exec", names["remote"], "iperf3", "-s",
                                       "-B", REMOTE], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        servers = subprocess.Popen(["ip", "netns", "exec", names["remote"], sys.executable,
                                    str(HERE / "kernel_servers.py"), REMOTE],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append(servers)
        # the echo servers say "ready" once bound (a loaded machine may take seconds)
        assert servers.stdout is not None
        if servers.stdout.readline().strip() != b"ready":
            raise RuntimeError("the remote echo servers did not start")
        time.sleep(0.5)  # and iperf3's
        yield names
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        for name in names.values():
            sh("ip", "netns", "del", name, check=False)
            shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)


def start_translator(kind: str, names: dict[str, str]) -> subprocess.Popen[bytes]:
    outer, guest = names["outer"], names[kind]
    enter = ["ip", "netns", "exec", outer]
    if kind == "ustack":
        argv = [sys.executable, "-m", "ustack.cli.main", "run", "-q", "--netns", guest]
    elif kind == "pasta":
        argv = ["pasta", "--config-net", "--no-map-gw", "-t", "none", "-u", "none", "-T",
                "none", "-U", "none", "-m", "65520", "--runas", "0",
                "--netns", f"/run/netns/{guest}",
                "--foreground", "--quiet"]
    else:
        argv = ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                "--netns-type=path", f"/run/netns/{guest}", "tap0"]
    proc = subprocess.Popen([*enter, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while "default" not in sh("ip", "-n", guest, "route", check=False):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} did not configure its guest")
        time.sleep(0.1)
    time.sleep(0.5)
    return proc


def translator_pid(proc: subprocess.Popen[bytes]) -> int:
    """The translator itself, not the ``ip netns exec`` wrapper (which execs it anyway)."""
    return proc.pid


def measure(guest: str, test: str, seconds: float) -> dict[str, float]:
    """One measurement from the guest: {"value": rate} and, for udp_rr, the requests
    "lost" (unanswered within the client's per-request timeout) and "sent". A client
    that fails (no echo at all) gives a value of NaN, shown as "failed", never 0."""
    run = ["ip", "netns", "exec", guest]
    if test in ("up", "down"):
        out = sh(*run, "iperf3", "-c", REMOTE, "-t", str(seconds), "-J",
                 *(["-R"] if test == "down" else []), timeout=seconds + 60)
        return {"value": float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e6}
    port = "7"
    try:
        out = sh(*run, sys.executable, str(HERE / "clients.py"), test, REMOTE, port,
                 str(seconds), timeout=seconds + 60)
    except subprocess.CalledProcessError as exc:
        print(f"forwardbench: {test} in {guest} failed: {exc.stderr.strip()}", flush=True)
        return {"value": math.nan}
    result = json.loads(out)
    return {key: float(value) for key, value in result.items() if key != "unit"}


def _lost(row: dict[str, object], kind: str) -> str:
    lost, sent = row.get(f"{kind}_lost"), row.get(f"{kind}_sent")
    return f", lost {lost:.0f}/{sent:.0f}" if isinstance(lost, float) and lost and \
        isinstance(sent, float) else ""


def run(seconds: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    kinds = ["ustack", "pasta", "slirp4netns"]
    with world() as names:
        procs = {kind: start_translator(kind, names) for kind in kinds}
        try:
            for label, test, unit in TESTS:
                row: dict[str, object] = {"test": label, "unit": unit}
                for kind in kinds:
                    pid = translator_pid(procs[kind])
                    cpu0, t0 = cpu_seconds(pid), time.monotonic()
                    result = measure(names[kind], test, seconds)
                    row[f"{kind}_cpu"] = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
                    row[kind] = result.pop("value")
                    row.update((f"{kind}_{key}", value) for key, value in result.items())
                rows.append(row)
                print(f"{label:<24} " + "  ".join(
                    f"{k} {row[k]:>9.0f} {unit} (cpu {row[f'{k}_cpu']:.0%}{_lost(row, k)})"
                    for k in kinds), flush=True)
        finally:
            for proc in procs.values():
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return rows


def number(row: dict[str, object], key: str) -> float:
    """A numeric column of a result row (the rows mix numbers and strings)."""
    value = row[key]
    assert isinstance(value, int | float), (key, value)
    return float(value)


def _rate(value: float) -> str:
    return "failed" if math.isnan(value) else f"{value:.0f}"


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| test | ustack | pasta | slirp4netns | ustack/pasta | ustack/slirp4netns | "
             "CPU ustack / pasta / slirp4netns |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        u, p, s = (number(r, k) for k in ("ustack", "pasta", "slirp4netns"))
        lines.append(f"| {r['test']} | {_rate(u)} {r['unit']} | {_rate(p)} | {_rate(s)} | "
                     f"{u / p if p else 0:.2f} | {u / s if s else 0:.2f} | "
                     f"{r['ustack_cpu']:.0%} / {r['pasta_cpu']:.0%} / "
                     f"{r['slirp4netns_cpu']:.0%} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("forwardbench: needs root", file=sys.stderr)
        return 2
    ensure_tools()
    rows = run(args.seconds)
    print()
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))

    return 0


if __name__ == "__main__":
    sys.exit(main())
