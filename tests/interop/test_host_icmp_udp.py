# SPDX-License-Identifier: MIT
"""The kernel talks to ``ustack host`` over a tap: ping, fragmented ping, UDP echo, pcap."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.interop.hostrun import NEEDS_ROOT, in_ns, namespace, ustack_host

pytestmark = [pytest.mark.interop, NEEDS_ROOT]

UDP_CLIENT = """
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(2); s.connect((sys.argv[1], 7))
ok = 0
for i in range(1000):
    msg = i.to_bytes(4, 'big') * (1 + i % 300)
    s.send(msg)
    ok += s.recv(2000) == msg
print(ok)
"""


@pytest.mark.parametrize("mtu", [1500, 65520])
def test_kernel_pings_ustack(tmp_path: Path, mtu: int) -> None:
    with namespace() as ns, ustack_host(ns, "--udp-echo", "7", mtu=mtu, tmp=tmp_path) as host:
        for argv in (["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", host.v4],
                     ["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", host.v6]):
            out = in_ns(ns, *argv).stdout
            assert " 0% packet loss" in out, out
        stats = host.stats()["stack"]
        assert stats["icmp4.echo_replied"] >= 3 and stats["icmp6.echo_replied"] >= 3


def test_fragmented_ping_at_mtu_1500(tmp_path: Path) -> None:
    with namespace() as ns, ustack_host(ns, tmp=tmp_path) as host:
        out = in_ns(ns, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-s", "4000",
                    host.v4).stdout
        assert " 0% packet loss" in out and "4008 bytes from" in out, out
        stats = host.stats()["stack"]
        assert stats["ipv4.reassembled"] >= 3  # the requests came in fragments
        assert stats["ipv4.tx_fragments"] >= 9  # and the replies left in fragments
        out6 = in_ns(ns, "ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "2", "-s", "3000",
                     host.v6).stdout
        assert " 0% packet loss" in out6, out6


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_kernel_udp_client_gets_1000_of_1000_echoed(tmp_path: Path, family: str) -> None:
    with namespace() as ns, ustack_host(ns, "--udp-echo", "7", tmp=tmp_path) as host:
        addr = host.v4 if family == "v4" else host.v6
        out = in_ns(ns, sys.executable, "-c", UDP_CLIENT, addr).stdout
        assert out.strip() == "1000"


def test_closed_udp_port_answers_port_unreachable(tmp_path: Path) -> None:
    script = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              "s.settimeout(2); s.connect(('{0}', 9999)); s.send(b'x')\n"
              "try:\n s.recv(10)\nexcept ConnectionRefusedError:\n print('refused')")
    with namespace() as ns, ustack_host(ns, tmp=tmp_path) as host:
        out = in_ns(ns, sys.executable, "-c", script.format(host.v4)).stdout
        assert out.strip() == "refused"
        assert host.stats()["stack"]["icmp4.tx_error_3_3"] == 1


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_tshark_reads_the_pcap(tmp_path: Path) -> None:
    pcap = tmp_path / "host.pcap"
    with namespace() as ns, ustack_host(ns, "--pcap", str(pcap), "--udp-echo", "7",
                                        tmp=tmp_path) as host:
        in_ns(ns, "ping", "-n", "-c", "2", "-i", "0.2", host.v4)
        in_ns(ns, sys.executable, "-c", UDP_CLIENT.replace("range(1000)", "range(5)"), host.v4)
    import subprocess

    out = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.protocols"],
                         capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert any("icmp" in line for line in lines)
    assert any(":udp" in line for line in lines)
    assert any(":arp" in line for line in lines)


def test_ustack_pings_the_kernel(tmp_path: Path) -> None:
    import subprocess

    from tests.interop.hostrun import USTACK, host_args

    with namespace() as ns:
        for target in ("10.201.0.1", "fd00:1::1"):
            proc = subprocess.run([*USTACK, *host_args(ns, 1, 1500), "--control",
                                   str(tmp_path / "p.sock"), "--ping", target, "--count", "3"],
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert "3 sent, 3 received" in proc.stdout, proc.stdout
