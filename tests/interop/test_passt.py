# SPDX-License-Identifier: MIT
"""``ustack passt``: a VM on qemu's stream socket, played by a second ustack stack, gets its
address by DHCP (and IPv6 by router advertisements) and fetches files from a remote
namespace through ustack. ustack runs in the isolated outer namespace."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.hostrun import NEEDS_ROOT
from tests.interop.topology import REMOTE4, REMOTE6, World, world
from ustack.apps import http
from ustack.apps.dhcp_client import acquire
from ustack.link.qemu import QemuStreamEndpoint
from ustack.runtime import new_stack
from ustack.stack import StackOptions

pytestmark = [pytest.mark.interop, NEEDS_ROOT]
BLOB = bytes(range(256)) * 4096 * 16  # 16 MiB


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    (tmp_path / "blob.bin").write_bytes(BLOB)
    with world(tmp_path) as the_world:
        yield the_world
        assert the_world.sink_packets() == 0


def passt(w: World, sock: Path, *options: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(["ip", "netns", "exec", w.outer, sys.executable, "-m",
                             "ustack.cli.main", "passt", "--socket", str(sock), *options],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 15
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "passt did not start"
        time.sleep(0.05)
    return proc


async def vm_session(sock: Path, out: Path, prefix6: bytes = b"\xfd\x00\x00\x00\x00\x00\x00\x02",
                     ) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    stack = new_stack(loop, options=StackOptions(slaac=True))
    link = QemuStreamEndpoint.connect(str(sock))
    stack.create_nic(link, "eth0")
    link.start(loop)
    client, lease = await acquire(stack, timeout=20)
    got4 = await http.fetch(stack, f"http://{REMOTE4}/blob.bin", out / "vm4.bin")
    deadline = time.monotonic() + 15
    while not any(e.addr.startswith(prefix6) for e in stack.nic("eth0").addresses[16]):
        assert time.monotonic() < deadline, "no SLAAC address from ustack's RAs"
        await asyncio.sleep(0.1)
    got6 = await http.fetch(stack, f"http://[{REMOTE6}]/blob.bin", out / "vm6.bin")
    client.close()
    link.close()
    return {"lease": str(lease), "dns": [d.hex() for d in lease.dns_servers],
            "routers": [r.hex() for r in lease.routers],
            "status4": got4.status, "status6": got6.status}


def test_vm_gets_dhcp_address_and_fetches_files(w: World, tmp_path: Path) -> None:
    sock = tmp_path / "vm.sock"
    proc = passt(w, sock)
    try:
        result = asyncio.run(vm_session(sock, tmp_path))
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert result["lease"] == "10.0.2.100/24"
    assert result["dns"] == ["0a000202"]  # the gateway's DNS forwarder
    assert result["status4"] == result["status6"] == 200
    digest = hashlib.sha256(BLOB).hexdigest()
    for name in ("vm4.bin", "vm6.bin"):
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest
    assert "guest connected" in output


def test_socket_path_in_use_is_a_clear_error(w: World, tmp_path: Path) -> None:
    sock = tmp_path / "busy.sock"
    first = passt(w, sock)
    try:
        second = subprocess.run(["ip", "netns", "exec", w.outer, sys.executable, "-m",
                                 "ustack.cli.main", "passt", "--socket", str(sock)],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert "ustack passt:" in second.stderr and "in use" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.terminate()
        first.wait(timeout=10)


def test_vm_gets_the_configured_addresses(w: World, tmp_path: Path) -> None:
    """-a/-g/--dns-forward: DHCP hands out the chosen address, router and DNS server, the
    router advertisements the chosen IPv6 prefix, and the VM's flows go through."""
    sock = tmp_path / "vm.sock"
    proc = passt(w, sock, "-a", "192.168.77.10/24", "-g", "192.168.77.1", "-a", "fd77::10/64",
                 "-g", "fd77::1", "--dns-forward", "192.168.77.53")
    try:
        result = asyncio.run(vm_session(sock, tmp_path, prefix6=bytes.fromhex("fd77" + "00" * 6)))
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert result["lease"] == "192.168.77.10/24"
    assert result["routers"] == ["c0a84d01"]
    assert result["dns"] == ["c0a84d35"]
    assert result["status4"] == result["status6"] == 200
    digest = hashlib.sha256(BLOB).hexdigest()
    for name in ("vm4.bin", "vm6.bin"):
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest
