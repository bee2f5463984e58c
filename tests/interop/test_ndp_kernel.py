# SPDX-License-Identifier: MIT
"""Duplicate address detection (RFC 4862 5.4) and neighbor unreachability detection
(RFC 4861 7.3) against the Linux kernel: ustack on a tap, the kernel in a namespace of
our own at the other end (the network rule of test_tap.py: no other traffic)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.interop.test_tap import LoopThread, stop_tap_and_loop, unique_name
from ustack.clock import RealClock
from ustack.link.tap import TapEndpoint
from ustack.netns import Namespace
from ustack.network.neighbor import NeighborState
from ustack.stack import Stack
from ustack.wire.proto import EtherType

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun")
                       or shutil.which("ip") is None,
                       reason="needs root, /dev/net/tun and ip"),
]

KERNEL6, USTACK6 = "fd00:204::1", "fd00:204::2"
TAP = "usttap1"


@dataclass
class Link:
    ns: Namespace
    stack: Stack
    runner: LoopThread

    def ip(self, *argv: str) -> str:
        result = subprocess.run(["ip", "netns", "exec", self.ns.name, "ip", *argv],
                                capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def wait(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.1)
        return condition()


def make_stack(runner: LoopThread, tap: TapEndpoint) -> Stack:
    clock = RealClock(runner.loop)
    clock.bind_thread()
    stack = Stack(clock)
    # short NUD timers so that the test takes seconds, not a minute
    stack.neighbor_config.reachable_time = 1.0
    stack.neighbor_config.delay_first_probe_time = 0.5
    stack.create_nic(tap, "tap0")
    stack.add_address("tap0", f"{USTACK6}/64", dad=False)
    tap.start(runner.loop)
    return stack


@pytest.fixture
def link() -> Iterator[Link]:
    ns = Namespace.create(unique_name())
    runner: LoopThread | None = None
    tap: TapEndpoint | None = None
    try:
        tap = ns.create_tap(TAP, mtu=1500, offload=False)
        ns.add_address(TAP, f"{KERNEL6}/64")  # nodad: the kernel's address is usable at once
        runner = LoopThread()
        stack = runner.call(make_stack, runner, tap)
        yield Link(ns, stack, runner)
        assert runner.errors == [], runner.errors
    finally:
        stop_tap_and_loop(runner, tap)
        ns.delete()
    assert not ns.exists()


def packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def test_ustack_finds_the_kernels_address_is_a_duplicate(link: Link) -> None:
    """ustack probes for the kernel's address; the kernel defends it (RFC 4861 7.2.4)."""
    link.runner.call(link.stack.add_address, "tap0", f"{KERNEL6}/64")
    assert link.wait(lambda: link.stack.stats["ndp.dad_duplicate"] == 1)
    nic = link.stack.nic("tap0")
    assert not link.runner.call(nic.has_address, packed(KERNEL6))
    assert link.stack.stats["ndp.dad_succeeded"] == 0


def test_kernel_finds_ustacks_address_is_a_duplicate(link: Link) -> None:
    """The kernel's DAD probe (from ::) for ustack's address draws ustack's answer."""
    link.ip("-6", "addr", "add", f"{USTACK6}/64", "dev", TAP)  # with DAD, as Linux adds it
    assert link.wait(lambda: "dadfailed" in link.ip("-6", "addr", "show", "dev", TAP))


def test_a_unique_address_is_assigned_after_dad_and_answers(link: Link) -> None:
    fresh = "fd00:204::5"
    link.runner.call(link.stack.add_address, "tap0", f"{fresh}/64")
    assert link.wait(lambda: link.stack.stats["ndp.dad_succeeded"] >= 1)
    nic = link.stack.nic("tap0")
    assert link.runner.call(nic.has_address, packed(fresh))
    result = subprocess.run(["ip", "netns", "exec", link.ns.name, "ping", "-6", "-n", "-c", "2",
                             "-i", "0.2", "-W", "2", fresh], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stale_kernel_neighbor_is_probed_and_confirmed_by_unicast(link: Link) -> None:
    """RFC 4861 7.3.3: DELAY, then a unicast NS the kernel answers (solicited NA)."""
    nic = link.stack.nic("tap0")
    cache = nic.neighbor_cache(EtherType.IPV6)
    assert cache is not None

    def send() -> None:  # on the stack's thread
        sock = link.stack.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.sendto(b"nud", (KERNEL6, 9))
        sock.close()

    link.runner.call(send)
    kernel = packed(KERNEL6)
    assert link.wait(lambda: link.runner.call(cache.state, kernel) is NeighborState.REACHABLE)
    assert link.wait(lambda: link.runner.call(cache.state, kernel) is NeighborState.STALE,
                     timeout=5.0)
    probes_before = link.stack.stats["ipv6.neighbor_probe"]
    link.runner.call(send)
    assert link.runner.call(cache.state, kernel) is NeighborState.DELAY
    assert link.wait(lambda: link.stack.stats["ipv6.neighbor_probe"] > probes_before)
    assert link.wait(lambda: link.runner.call(cache.state, kernel) is NeighborState.REACHABLE)
    assert link.stack.stats["ipv6.neighbor_expired"] == 0
