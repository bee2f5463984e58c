# SPDX-License-Identifier: MIT
"""``ustack run`` options a pasta user expects: the guest dies with ustack, pasta's
addressing options (-a/-n/-g/-4/-6/--dns-forward) and outbound port forwarding from
the guest's loopback to the host's (-T/-U).

ustack runs in the isolated outer namespace of :mod:`tests.interop.topology`; "the
host's loopback" is that namespace's loopback, where loopback_servers.py listens.
Each test checks that nothing left through the sink.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.interop.hostrun import NEEDS_ROOT
from tests.interop.topology import REMOTE4, REMOTE6, World, world

pytestmark = [pytest.mark.interop, NEEDS_ROOT]

HERE = Path(__file__).resolve().parent
PROBE = str(HERE / "guest_probe.py")
TCP_PORT, UDP_PORT = 47011, 47012  # on the outer namespace's loopback
CLOSED_PORT = 47013  # nothing listens there
PATTERN = bytes(range(256)) * 4096


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    www = tmp_path_factory.mktemp("remote-www")
    (www / "index.html").write_bytes(b"remote\n")
    with world(www) as the_world, loopback_servers(the_world):
        yield the_world
        assert the_world.sink_packets() == 0, "something left through the sink"


@contextmanager
def loopback_servers(w: World) -> Iterator[None]:
    proc = subprocess.Popen(["ip", "netns", "exec", w.outer, sys.executable,
                             str(HERE / "loopback_servers.py"), str(TCP_PORT), str(UDP_PORT)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait(timeout=10)


def probe(w: World, options: list[str], *actions: str) -> dict[str, Any]:
    """Run guest_probe.py in a guest of ``ustack run OPTIONS``; its report."""
    proc = w.ustack_run(*options, "--", sys.executable, PROBE, *actions, timeout=120,
                        check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def tcp_answer(size: int, peer: str) -> str:
    digest = hashlib.sha256()
    sent = 0
    while sent < size:
        block = PATTERN[:size - sent]
        digest.update(block)
        sent += len(block)
    return f"tcp {size} {digest.hexdigest()} {peer}"


def defaults(routes: list[dict[str, Any]]) -> list[str]:
    return [str(r["gateway"]) for r in routes if r["dst"] == "default"]


# --- the guest does not outlive ustack ---------------------------------------------------------

def _state(pid: int) -> str | None:
    """The process state letter (R, S, Z...), None once the pid is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.parametrize("userns", [[], ["--userns"]], ids=["root", "userns"])
def test_guest_is_killed_when_ustack_is_killed(w: World, tmp_path: Path,
                                               userns: list[str]) -> None:
    pid_file = tmp_path / "guest.pid"
    ustack = subprocess.Popen(["ip", "netns", "exec", w.outer, sys.executable, "-m",
                               "ustack.cli.main", "run", *userns, "--", "sh", "-c",
                               f"echo $$ > {pid_file}; exec sleep 1000"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    guest = 0
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert ustack.poll() is None and time.monotonic() < deadline, "no guest started"
            time.sleep(0.05)
        guest = int(pid_file.read_text())
        while Path(f"/proc/{guest}/cmdline").read_bytes().split(b"\0")[0] != b"sleep":
            assert time.monotonic() < deadline, "the guest did not exec sleep"
            time.sleep(0.05)
        assert _ppid(guest) == ustack.pid  # ustack (ip netns exec execs it in place)
        ustack.kill()  # SIGKILL: ustack cannot clean anything up itself
        ustack.wait(timeout=10)
        deadline = time.monotonic() + 5
        while _state(guest) not in (None, "Z"):  # a zombie waits for init to reap it
            assert time.monotonic() < deadline, f"the guest {guest} outlived ustack"
            time.sleep(0.05)
        guest = 0
    finally:
        if ustack.poll() is None:
            ustack.kill()
            ustack.wait()
        if guest and _state(guest) not in (None, "Z"):
            os.kill(guest, signal.SIGKILL)  # only if the test failed: our own guest


def test_parent_death_signal_and_the_race_check() -> None:
    """prctl(2): the signal is set, and a parent that is not ours any more is noticed."""
    script = ("import ctypes, os, signal\n"
              "from ustack.forward.guest_ns import die_with_parent\n"
              "libc = ctypes.CDLL(None, use_errno=True)\n"
              "print(die_with_parent(os.getppid(), signal.SIGKILL))\n"
              "got = ctypes.c_int(0)\n"
              "libc.prctl(2, ctypes.byref(got), 0, 0, 0)  # PR_GET_PDEATHSIG\n"
              "print(got.value)\n"
              "print(die_with_parent(os.getppid() + 1, signal.SIGKILL))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=30).stdout.split()
    assert out == ["True", str(int(signal.SIGKILL)), "False"]


# --- addressing --------------------------------------------------------------------------------

def test_custom_addresses_and_gateways(w: World) -> None:
    """A /24 and a /64 of the user's choice: the guest reaches the host's loopback through
    the custom gateways, ustack's DNS forwarder on the --dns-forward address, and the
    remote servers."""
    report = probe(w, ["-a", "192.168.77.10/24", "-g", "192.168.77.1", "-a", "fd77::10/64",
                       "-g", "fd77::1", "--dns-forward", "192.168.77.53"],
                   f"tcp:192.168.77.1:{TCP_PORT}:100000", f"tcp:[fd77::1]:{TCP_PORT}:1000",
                   f"udp:192.168.77.1:{UDP_PORT}", "dns", "dns:fd77::1",
                   f"tcp:{REMOTE4}:7:10", f"tcp:[{REMOTE6}]:7:10")
    assert sorted(report["addresses"]) == [["192.168.77.10", 24], ["fd77::10", 64]]
    assert defaults(report["routes4"]) == ["192.168.77.1"]
    assert defaults(report["routes6"]) == ["fd77::1"]
    assert report["nameservers"] == ["192.168.77.53", "fd77::1"]
    results = report["results"]
    # the host's loopback services see a loopback peer
    assert results[f"tcp:192.168.77.1:{TCP_PORT}:100000"] == tcp_answer(100000, "127.0.0.1")
    assert results[f"tcp:[fd77::1]:{TCP_PORT}:1000"] == tcp_answer(1000, "::1")
    assert results[f"udp:192.168.77.1:{UDP_PORT}"] == "udp hi 127.0.0.1"
    # the DNS forwarder answers on --dns-forward and on the gateway (the remote DNS answers)
    assert results["dns"] == REMOTE4
    assert results["dns:fd77::1"] == REMOTE4
    # the remote echo server, through the custom gateways
    assert results[f"tcp:{REMOTE4}:7:10"] == PATTERN[:10].decode("latin-1")
    assert results[f"tcp:[{REMOTE6}]:7:10"] == PATTERN[:10].decode("latin-1")
    assert w.sink_packets() == 0


def test_ipv4_only_leaves_ipv6_unconfigured_and_unforwarded(w: World) -> None:
    report = probe(w, ["-4", "-T", f"{TCP_PORT}"], f"tcp:{REMOTE4}:7:3",
                   f"tcp:[{REMOTE6}]:7:3", f"tcp:[fd00:0:0:2::2]:{TCP_PORT}:3",
                   f"tcp:127.0.0.1:{TCP_PORT}:3", f"tcp:[::1]:{TCP_PORT}:3")
    assert report["addresses"] == [["10.0.2.100", 24]]
    assert report["routes6"] == []  # not even fe80::/64: IPv6 is off on the tap
    assert report["nameservers"] == ["10.0.2.2"]
    results = report["results"]
    assert results[f"tcp:{REMOTE4}:7:3"] == "\x00\x01\x02"
    assert results[f"tcp:[{REMOTE6}]:7:3"] == "error:ENETUNREACH"
    assert results[f"tcp:[fd00:0:0:2::2]:{TCP_PORT}:3"] == "error:ENETUNREACH"
    assert results[f"tcp:127.0.0.1:{TCP_PORT}:3"] == tcp_answer(3, "127.0.0.1")  # -T
    assert results[f"tcp:[::1]:{TCP_PORT}:3"] == "error:ECONNREFUSED"  # -T binds no ::1
    assert w.sink_packets() == 0


def test_ipv6_only_leaves_ipv4_unconfigured_and_unforwarded(w: World) -> None:
    report = probe(w, ["-6"], f"tcp:{REMOTE4}:7:3", f"tcp:[{REMOTE6}]:7:3",
                   f"tcp:[fd00:0:0:2::2]:{TCP_PORT}:3", "dns")
    assert report["addresses"] == [["fd00:0:0:2::100", 64]]
    assert report["routes4"] == []
    assert report["nameservers"] == ["fd00:0:0:2::2"]
    results = report["results"]
    assert results[f"tcp:{REMOTE4}:7:3"] == "error:ENETUNREACH"
    assert results[f"tcp:[{REMOTE6}]:7:3"] == "\x00\x01\x02"
    assert results[f"tcp:[fd00:0:0:2::2]:{TCP_PORT}:3"] == tcp_answer(3, "::1")
    assert results["dns"] == REMOTE4
    assert w.sink_packets() == 0


# --- -T/-U: the guest's loopback reaches the host's ----------------------------------------------

def test_guest_loopback_ports_reach_host_loopback(w: World) -> None:
    size = 4 << 20
    report = probe(w, ["-T", f"2000:{TCP_PORT}", "-T", f"2002:{CLOSED_PORT}",
                       "-U", f"2001:{UDP_PORT}"],
                   f"tcp:127.0.0.1:2000:{size}", f"tcp:[::1]:2000:{size}",
                   "udp:127.0.0.1:2001", "udp:[::1]:2001", "tcp:127.0.0.1:2002:10",
                   f"tcp:127.0.0.1:{TCP_PORT}:10")
    results = report["results"]
    assert results[f"tcp:127.0.0.1:2000:{size}"] == tcp_answer(size, "127.0.0.1")
    assert results[f"tcp:[::1]:2000:{size}"] == tcp_answer(size, "::1")
    assert results["udp:127.0.0.1:2001"] == "udp hi 127.0.0.1"
    assert results["udp:[::1]:2001"] == "udp hi ::1"
    # nothing listens on the host port: the guest's connection is reset, as pasta does
    assert results["tcp:127.0.0.1:2002:10"] in ("error:ECONNRESET", "error:EPIPE")
    # a port not given with -T stays the guest's own
    assert results[f"tcp:127.0.0.1:{TCP_PORT}:10"] == "error:ECONNREFUSED"
    assert w.sink_packets() == 0


def test_loopback_port_ranges(w: World) -> None:
    """-T with a range and a list: every port of it is forwarded."""
    report = probe(w, ["-T", f"3000-3002:{TCP_PORT}-{TCP_PORT + 2},3005:{TCP_PORT}",
                       "-U", f"{UDP_PORT}"],
                   "tcp:127.0.0.1:3000:5", "tcp:[::1]:3000:5", "tcp:127.0.0.1:3001:5",
                   "tcp:127.0.0.1:3005:7", f"udp:127.0.0.1:{UDP_PORT}")
    results = report["results"]
    assert results["tcp:127.0.0.1:3000:5"] == tcp_answer(5, "127.0.0.1")
    assert results["tcp:127.0.0.1:3005:7"] == tcp_answer(7, "127.0.0.1")
    assert results["tcp:[::1]:3000:5"] == tcp_answer(5, "::1")
    # 3001 maps to TCP_PORT + 1, where nothing listens
    assert results["tcp:127.0.0.1:3001:5"] in ("error:ECONNRESET", "error:EPIPE")
    assert results[f"udp:127.0.0.1:{UDP_PORT}"] == "udp hi 127.0.0.1"


def test_bad_options_are_one_line_errors(w: World) -> None:
    for options, expected in (
            (["-a", "10.0.3.5/24", "-g", "10.0.2.2"], "outside the guest's network"),
            (["-a", "10.0.3.5/24", "-g", "10.0.3.5"], "both 10.0.3.5"),
            (["-a", "10.0.3.x"], "not an IPv4 or IPv6 address"),
            (["-4", "-a", "fd00::5"], "turned off by -4"),
            (["-T", "0"], "within 1-65535"),
            (["-m", "10"], "MTU 10"),
    ):
        proc = w.ustack_run(*options, "--", "true", check=False, timeout=60)
        assert proc.returncode == 2, (options, proc.stderr)
        assert proc.stderr.startswith("ustack run: ") and expected in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_thousands_of_loopback_ports(w: World) -> None:
    """7000 ports, both families: 14000 sockets passed from the guest child in batches."""
    script = ("import socket, subprocess\n"
              "count = lambda flag: len(subprocess.run(['ss', '-H', flag], capture_output=True,"
              " text=True, check=True).stdout.splitlines())\n"
              "s = socket.create_connection(('::1', 24999)); s.shutdown(socket.SHUT_WR)\n"
              "print(count('-ltn'), count('-lun'), s.recv(200).decode())\n")
    proc = w.ustack_run("-T", f"20000-24998,24999:{TCP_PORT}", "-U", "20000-21999", "--",
                        sys.executable, "-c", script, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().split(maxsplit=2) == ["10000", "4000", tcp_answer(0, "::1")]


def test_too_many_loopback_ports_is_a_clear_error(w: World) -> None:
    proc = w.run("sh", "-c", f"ulimit -n 1000 && exec {sys.executable} -m ustack.cli.main run "
                 "-T 20000-21000 -- true", check=False, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("ustack run: too many -T/-U ports for the open file limit: "
                                   "forward fewer, or raise it (ulimit -n)")
