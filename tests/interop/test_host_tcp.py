# SPDX-License-Identifier: MIT
"""TCP between the Linux kernel and ``ustack host``: 100 MB both ways with curl and
python's http.server, at MTU 1500 and 65520, clean and with loss (nftables random drop
in the kernel's direction, and ustack's own impairment link dropping and reordering)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.interop.hostrun import (
    NEEDS_ROOT,
    USTACK,
    host_args,
    in_ns,
    make_blob,
    namespace,
    sha256_file,
    ustack_host,
)

pytestmark = [pytest.mark.interop, NEEDS_ROOT]
SIZE = 100 << 20


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("www")
    path = root / "blob.bin"
    return path, make_blob(path, SIZE)


@contextmanager
def kernel_drops(ns: str, percent: int, tmp: Path) -> Iterator[None]:
    """nftables in the namespace: drop ``percent``% of what the kernel sends to ustack."""
    rules = tmp / "drop.nft"
    rules.write_text(f"table inet ustest {{\n chain out {{\n  type filter hook output priority 0;"
                     f" policy accept;\n  oifname \"ustk0\" numgen random mod 100 < {percent}"
                     f" counter drop\n }}\n}}\n")
    in_ns(ns, "nft", "-f", str(rules))
    try:
        yield
    finally:
        in_ns(ns, "nft", "delete table inet ustest", check=False)


def dropped_by_nft(ns: str) -> int:
    out = in_ns(ns, "nft", "list table inet ustest").stdout
    return int(out.split("counter packets ")[1].split()[0])


def curl(ns: str, url: str, out: Path) -> None:
    in_ns(ns, "curl", "-sS", "--fail", "--max-time", "300", "-o", str(out), url, timeout=320)


def fetch(ns: str, url: str, out: Path, tmp: Path, *extra: str, mtu: int = 1500) -> str:
    proc = subprocess.run([*USTACK, *host_args(ns, 1, mtu), "--control", str(tmp / "f.sock"),
                           "--fetch", url, "--output", str(out), *extra],
                          capture_output=True, text=True, timeout=320)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@contextmanager
def http_server(ns: str, root: Path) -> Iterator[None]:
    """python3 -m http.server in the namespace, on the wildcard address (the tap's
    addresses appear only once ustack host has created it)."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "http.server",
                             "--bind", "0.0.0.0", "--directory", str(root), "8000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while "8000" not in in_ns(ns, "ss", "-ltn").stdout:
            assert time.monotonic() < deadline, "http.server did not start"
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait()


@pytest.mark.parametrize("mtu", [1500, 65520])
def test_curl_downloads_100mb_from_ustack(tmp_path: Path, blob: tuple[Path, str],
                                          mtu: int) -> None:
    path, digest = blob
    with namespace() as ns, ustack_host(ns, "--http", "80", "--http-root", str(path.parent),
                                        mtu=mtu, tmp=tmp_path) as host:
        curl(ns, f"http://{host.v4}/blob.bin", tmp_path / "got.bin")
        assert sha256_file(tmp_path / "got.bin") == digest
        curl(ns, f"http://[{host.v6}]/blob.bin", tmp_path / "got6.bin")
        assert sha256_file(tmp_path / "got6.bin") == digest


@pytest.mark.parametrize("mtu", [1500, 65520])
def test_ustack_fetches_100mb_from_kernel_http_server(tmp_path: Path, blob: tuple[Path, str],
                                                      mtu: int) -> None:
    path, digest = blob
    with namespace() as ns, http_server(ns, path.parent):
        out = fetch(ns, "http://10.201.0.1:8000/blob.bin", tmp_path / "got.bin", tmp_path,
                    mtu=mtu)
        assert "HTTP 200" in out
        assert sha256_file(tmp_path / "got.bin") == digest


def test_kernel_side_negotiates_wscale_timestamps_and_sack(tmp_path: Path) -> None:
    script = ("import socket, subprocess, sys\n"
              "s = socket.create_connection((sys.argv[1], 7), timeout=5)\n"
              "s.sendall(b'x' * 100000); s.recv(10)\n"
              "print('tcpi_options', s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[5])\n"
              "print(subprocess.run(['ss', '-tie', 'dst', sys.argv[1]], capture_output=True,"
              " text=True).stdout, flush=True)\n"
              "sys.stdin.readline()\n")
    with namespace() as ns, ustack_host(ns, "--tcp-echo", "7", tmp=tmp_path) as host:
        client = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script,
                                   host.v4], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        assert client.stdout is not None and client.stdin is not None
        out = "".join(client.stdout.readline() for _ in range(4))
        try:
            conns = host.ss()["connections"]
        finally:
            client.stdin.write("\n")
            client.stdin.close()
            client.wait(timeout=10)
        assert "tcpi_options 7" in out, out  # TCPI_OPT_TIMESTAMPS | SACK | WSCALE
        assert " ts sack " in out and "wscale:" in out, out
        assert len(conns) == 1 and conns[0]["options"] == 7  # and on ustack's side too


@pytest.mark.parametrize("mtu", [1500, 65520])
def test_transfers_survive_1pct_kernel_side_drop(tmp_path: Path, blob: tuple[Path, str],
                                                 mtu: int) -> None:
    path, digest = blob
    with namespace() as ns:
        with ustack_host(ns, "--http", "80", "--http-root", str(path.parent), mtu=mtu,
                         tmp=tmp_path) as host, kernel_drops(ns, 1, tmp_path):
            curl(ns, f"http://{host.v4}/blob.bin", tmp_path / "got.bin")
            assert dropped_by_nft(ns) > 0  # ACKs from the kernel were lost
            retrans = host.stats()["stack"].get("tcp.retransmitted_segments", 0)
        assert sha256_file(tmp_path / "got.bin") == digest
        with http_server(ns, path.parent), kernel_drops(ns, 1, tmp_path):
            fetch(ns, "http://10.201.0.1:8000/blob.bin", tmp_path / "got2.bin", tmp_path,
                  mtu=mtu)
            assert dropped_by_nft(ns) > 0  # data segments from the kernel were lost
        assert sha256_file(tmp_path / "got2.bin") == digest
        del retrans


def test_transfers_survive_ustack_impairment_loss_and_reordering(
        tmp_path: Path, blob: tuple[Path, str]) -> None:
    path, digest = blob
    impair = ("--loss", "1", "--reorder", "1", "--seed", "7")
    with namespace() as ns:
        with ustack_host(ns, "--http", "80", "--http-root", str(path.parent), *impair,
                         tmp=tmp_path) as host:
            curl(ns, f"http://{host.v4}/blob.bin", tmp_path / "got.bin")
            stats = host.stats()["stack"]
            assert stats.get("tcp.retransmitted_segments", 0) > 0
        assert sha256_file(tmp_path / "got.bin") == digest
        with http_server(ns, path.parent):
            fetch(ns, "http://10.201.0.1:8000/blob.bin", tmp_path / "got2.bin", tmp_path,
                  *impair)
        assert sha256_file(tmp_path / "got2.bin") == digest
