# SPDX-License-Identifier: MIT
"""Two stacks on a real asyncio loop in a background thread (RealClock), used through
blocking sockets from other threads. In-memory links only; every wait is short."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from ustack.bridge import call_in_loop
from ustack.clock import RealClock
from ustack.link.channel import ChannelEndpoint
from ustack.socket import DatagramSocket
from ustack.stack import Stack

pytestmark = pytest.mark.timeout(30)
T = TypeVar("T")


@dataclass
class LoopPair:
    loop: asyncio.AbstractEventLoop
    clock: RealClock
    thread: threading.Thread
    a: Stack = field(init=False)
    b: Stack = field(init=False)
    loop_errors: list[dict[str, Any]] = field(default_factory=list)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        return call_in_loop(self.clock, fn, *args)

    def udp(self, stack: Stack, timeout: float | None = 2.0,
            family: int = socket.AF_INET) -> DatagramSocket:
        sock = stack.socket(family, socket.SOCK_DGRAM)
        assert isinstance(sock, DatagramSocket)
        sock.settimeout(timeout)
        return sock


def _build(pair: LoopPair) -> None:
    """Runs on the loop thread: the stacks belong to it."""
    pair.clock.bind_thread()
    pair.a, pair.b = Stack(pair.clock, seed=1), Stack(pair.clock, seed=2)
    link_a, link_b = ChannelEndpoint.pair(pair.clock)
    for stack, link, v4, v6 in ((pair.a, link_a, "10.0.0.1/24", "fd00::1/64"),
                                (pair.b, link_b, "10.0.0.2/24", "fd00::2/64")):
        stack.create_nic(link, "eth0")
        stack.add_address("eth0", v4)
        stack.add_address("eth0", v6, dad=False)


@pytest.fixture
def lp() -> Iterator[LoopPair]:
    loop = asyncio.new_event_loop()
    pair = LoopPair(loop, RealClock(loop), threading.Thread())
    loop.set_exception_handler(lambda _loop, context: pair.loop_errors.append(context))
    pair.thread = threading.Thread(target=loop.run_forever, name="ustack-loop", daemon=True)
    pair.thread.start()
    pair.call(_build, pair)
    yield pair
    loop.call_soon_threadsafe(loop.stop)
    pair.thread.join(5)
    assert not pair.thread.is_alive()
    loop.close()


def test_stack_calls_run_on_the_loop_thread(lp: LoopPair) -> None:
    assert lp.a.call(threading.get_ident) == lp.thread.ident
    assert lp.a.call(threading.get_ident) != threading.get_ident()
    with pytest.raises(ZeroDivisionError):  # exceptions come back to the caller
        lp.a.call(lambda: 1 / 0)


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_udp_round_trip_from_the_main_thread(lp: LoopPair, family: int) -> None:
    server_addr = "10.0.0.2" if family == socket.AF_INET else "fd00::2"
    server = lp.udp(lp.b, family=family)
    server.bind((server_addr, 5000))
    client = lp.udp(lp.a, family=family)
    client.sendto(b"over threads", (server_addr, 5000))
    data, source = server.recvfrom(100)
    assert data == b"over threads"
    server.sendto(data.upper(), source[:2])
    assert client.recv(100) == b"OVER THREADS"


def test_recv_timeout_raises_in_real_time(lp: LoopPair) -> None:
    sock = lp.udp(lp.b, timeout=0.1)
    sock.bind(("10.0.0.2", 5000))
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        sock.recv(100)
    elapsed = time.monotonic() - start
    assert 0.09 <= elapsed < 2.0


def test_a_timed_out_recv_does_not_swallow_the_next_datagram(lp: LoopPair) -> None:
    sock = lp.udp(lp.b, timeout=0.05)
    sock.bind(("10.0.0.2", 5000))
    for _ in range(3):
        with pytest.raises(TimeoutError):
            sock.recv(100)
    lp.udp(lp.a).sendto(b"after the timeouts", ("10.0.0.2", 5000))
    sock.settimeout(2.0)
    assert sock.recv(100) == b"after the timeouts"
    assert len(lp.call(lambda: sock._endpoint.waiters)) <= 1  # abandoned waiters are removed


def test_blocking_recv_is_woken_by_a_datagram_from_another_thread(lp: LoopPair) -> None:
    server = lp.udp(lp.b, timeout=5.0)
    server.bind(("10.0.0.2", 5000))
    sender = lp.udp(lp.a)

    def send_later() -> None:
        time.sleep(0.05)
        sender.sendto(b"wake up", ("10.0.0.2", 5000))

    worker = threading.Thread(target=send_later)
    worker.start()
    start = time.monotonic()
    assert server.recv(100) == b"wake up"
    assert time.monotonic() - start < 2.0
    worker.join()


def test_non_blocking_from_another_thread(lp: LoopPair) -> None:
    sock = lp.udp(lp.b, timeout=0.0)
    sock.bind(("10.0.0.2", 5000))
    with pytest.raises(BlockingIOError):
        sock.recv(100)
    lp.udp(lp.a).sendto(b"now there is one", ("10.0.0.2", 5000))
    deadline = time.monotonic() + 2.0
    while True:
        try:
            assert sock.recv(100) == b"now there is one"
            break
        except BlockingIOError:
            assert time.monotonic() < deadline
            time.sleep(0.005)


def test_blocking_on_the_loop_thread_itself_is_refused(lp: LoopPair) -> None:
    sock = lp.udp(lp.b, timeout=1.0)
    sock.bind(("10.0.0.2", 5000))
    with pytest.raises(RuntimeError, match="event loop thread"):
        lp.call(sock.recv, 100)


def test_many_threads_at_once(lp: LoopPair) -> None:
    rounds = 30

    def echo_pair(index: int) -> int:
        server = lp.udp(lp.b)
        server.bind(("10.0.0.2", 6000 + index))
        client = lp.udp(lp.a)
        client.connect(("10.0.0.2", 6000 + index))
        done = 0
        for i in range(rounds):
            message = struct.pack("!HH", index, i)
            client.send(message)
            data, source = server.recvfrom(100)
            server.sendto(data, source)
            assert client.recv(100) == message
            done += 1
        client.close()
        server.close()
        return done

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(echo_pair, range(6)))
    assert results == [rounds] * 6


def test_ping_over_the_real_clock(lp: LoopPair) -> None:
    sock = lp.a.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    sock.settimeout(2.0)
    sock.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, 1) + b"real", ("10.0.0.2", 0))
    reply = sock.recv(100)
    assert reply[0] == 0 and reply[8:] == b"real"


def test_real_clock_timers_fire_in_order_and_never_early(lp: LoopPair) -> None:
    fired: list[tuple[float, float]] = []
    done = threading.Event()

    def arm() -> None:
        now = lp.clock.now()
        for delay in (0.03, 0.01, 0.02, 0.0, 0.015):
            lp.clock.call_later(delay, lambda w=now + delay: fired.append((w, lp.clock.now())))
        lp.clock.call_later(0.05, done.set)

    lp.call(arm)
    assert done.wait(5.0)
    assert [w for w, _ in fired] == sorted(w for w, _ in fired)
    assert all(now >= when for when, now in fired)


def test_real_clock_timer_errors_are_reported_and_others_still_fire(lp: LoopPair) -> None:
    fired = threading.Event()

    def boom() -> None:
        raise ValueError("timer bug")

    def arm() -> None:
        lp.clock.call_later(0.01, boom)
        lp.clock.call_later(0.01, fired.set)

    lp.call(arm)
    assert fired.wait(5.0)
    assert lp.call(lambda: lp.clock.timer_errors) == 1
    (context,) = lp.loop_errors
    assert isinstance(context["exception"], ValueError)
