# SPDX-License-Identifier: MIT
"""ustack on a tap, the Linux kernel on the other side in a network namespace of our own.

Network rule: the only traffic is between the namespace each test creates and
ustack at the tap's far end; the namespace has no default route and a private
resolv.conf, and ``ping -n`` does no name lookups.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import secrets
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pyroute2 import netns as pyroute2_netns

from ustack.buffer import PacketBuffer
from ustack.clock import RealClock
from ustack.link.tap import TUN_F_CSUM, TapEndpoint, TapError
from ustack.netns import Namespace, NamespaceError
from ustack.stack import Stack
from ustack.wire import checksum, vnet
from ustack.wire import ipv4 as ipv4_wire
from ustack.wire import ipv6 as ipv6_wire
from ustack.wire import tcp as tcp_wire
from ustack.wire.proto import EtherType, IPProto

T = TypeVar("T")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun")
                       or shutil.which("ip") is None or shutil.which("ping") is None,
                       reason="needs root, /dev/net/tun, ip and ping"),
]

KERNEL4, USTACK4 = "10.203.0.1", "10.203.0.2"
KERNEL6, USTACK6 = "fd00:203::1", "fd00:203::2"
TAP = "usttap0"


def unique_name() -> str:
    return f"ust-{os.getpid()}-{secrets.token_hex(3)}"


class LoopThread:
    """An asyncio loop on a background thread that owns the stack."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, context: self.errors.append(context))
        self.thread = threading.Thread(target=self.loop.run_forever, name="ustack", daemon=True)
        self.thread.start()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


def stop_tap_and_loop(runner: LoopThread | None, tap: TapEndpoint | None) -> None:
    """Teardown after a test that may have failed half-way through its setup: the tap is
    closed on the loop's thread while the loop runs, then the loop stops."""
    if runner is not None:
        if tap is not None:
            runner.call(tap.close)
        runner.stop()
    elif tap is not None:
        tap.close()


@dataclass
class Peer:
    ns: Namespace
    tap: TapEndpoint
    stack: Stack
    runner: LoopThread
    mtu: int

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a program inside the namespace (the kernel side)."""
        return subprocess.run(["ip", "netns", "exec", self.ns.name, *argv], capture_output=True,
                              text=True, timeout=timeout, check=False)

    def ping(self, *args: str, count: int = 3) -> str:
        result = self.run("ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", *args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(rf"\b{count} packets transmitted, {count} received", result.stdout), \
            result.stdout
        return result.stdout

    def kernel_socket(self, family: int) -> socket.socket:
        sock: socket.socket = pyroute2_netns.create_socket(self.ns.name, family,
                                                           socket.SOCK_DGRAM)
        sock.settimeout(5.0)
        return sock

    def tap_stats(self) -> dict[str, int]:
        return self.runner.call(self.tap.stats.snapshot)


def start_peer(mtu: int, offload: bool) -> Iterator[Peer]:
    name = unique_name()
    resolv = Path("/etc/netns") / name
    runner: LoopThread | None = None
    tap: TapEndpoint | None = None
    ns = Namespace.create(name)
    try:
        resolv.mkdir(parents=True)
        (resolv / "resolv.conf").write_text("# no resolvers: this namespace stays offline\n")
        tap = ns.create_tap(TAP, mtu=mtu, offload=offload)
        ns.add_address(TAP, f"{KERNEL4}/24")
        ns.add_address(TAP, f"{KERNEL6}/64")
        runner = LoopThread()
        stack = runner.call(make_stack, runner.loop, tap)
        yield Peer(ns, tap, stack, runner, mtu)
        assert runner.errors == [], runner.errors
    finally:
        stop_tap_and_loop(runner, tap)
        ns.delete()
        shutil.rmtree(resolv, ignore_errors=True)
    assert not ns.exists()


def make_stack(loop: asyncio.AbstractEventLoop, tap: TapEndpoint) -> Stack:
    clock = RealClock(loop)
    clock.bind_thread()
    stack = Stack(clock)
    stack.create_nic(tap, "tap0")
    stack.add_address("tap0", f"{USTACK4}/24")
    stack.add_address("tap0", f"{USTACK6}/64", dad=False)
    tap.start(loop)
    return stack


@pytest.fixture(params=[(1500, True), (1500, False), (65520, True), (65520, False)],
                ids=["mtu1500-offload", "mtu1500-nooffload", "mtu65520-offload",
                     "mtu65520-nooffload"])
def peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    mtu, offload = request.param
    yield from start_peer(mtu, offload)


def test_kernel_pings_ustack_v4(peer: Peer) -> None:
    out = peer.ping(USTACK4)
    assert f"from {USTACK4}" in out


def test_kernel_pings_ustack_v6(peer: Peer) -> None:
    out = peer.ping("-6", USTACK6)
    assert f"from {USTACK6}" in out


def test_kernel_pings_ustack_large(peer: Peer) -> None:
    """4000 bytes: three IPv4 fragments each way at MTU 1500, one frame at 65520."""
    before = peer.tap_stats()
    peer.ping("-s", "4000", USTACK4)
    peer.ping("-6", "-s", "4000", USTACK6)
    after = peer.tap_stats()
    frames = after["tap.rx_frames"] - before.get("tap.rx_frames", 0)
    if peer.mtu == 1500:
        assert frames >= 2 * 3 * 3  # 3 pings x 3 fragments, both families
    else:
        assert frames >= 2 * 3
    assert after.get("drops", 0) == 0


@pytest.mark.parametrize("size", [64, 3000])
def test_udp_both_ways_v4(peer: Peer, size: int) -> None:
    udp_exchange(peer, socket.AF_INET, KERNEL4, USTACK4, size)


@pytest.mark.parametrize("size", [64, 3000])
def test_udp_both_ways_v6(peer: Peer, size: int) -> None:
    udp_exchange(peer, socket.AF_INET6, KERNEL6, USTACK6, size)


def udp_exchange(peer: Peer, family: int, kernel_addr: str, ustack_addr: str,
                 size: int) -> None:
    ours = peer.stack.socket(family, socket.SOCK_DGRAM)
    ours.bind((ustack_addr, 7000))
    ours.settimeout(5.0)
    theirs = peer.kernel_socket(family)
    try:
        theirs.bind((kernel_addr, 0))
        before = peer.tap_stats()
        request = secrets.token_bytes(size)
        theirs.sendto(request, (ustack_addr, 7000))
        data, addr = ours.recvfrom(65535)
        assert data == request
        assert addr[0] == kernel_addr and addr[1] == theirs.getsockname()[1]
        reply = secrets.token_bytes(size)
        ours.sendto(reply, addr)
        data, addr = theirs.recvfrom(65535)
        assert data == reply
        assert addr[:2] == (ustack_addr, 7000)
        after = peer.tap_stats()
        offloaded = bool(peer.tap.offloads & TUN_F_CSUM)
        sent_partial = after.get("tap.tx_csum_partial", 0) - before.get("tap.tx_csum_partial", 0)
        got_partial = after.get("tap.rx_csum_partial", 0) - before.get("tap.rx_csum_partial", 0)
        # unfragmented UDP leaves its checksum to the other side when offloads are on
        fits = size + 8 + (20 if family == socket.AF_INET else 40) <= peer.mtu
        assert (sent_partial > 0) == (offloaded and fits)
        assert (got_partial > 0) == (offloaded and fits)
        assert after.get("drops", 0) == 0
    finally:
        theirs.close()
        ours.close()


def test_capabilities_follow_offload_flag() -> None:
    for offload in (True, False):
        for peer in start_peer(1500, offload):
            caps = str(peer.tap.capabilities)
            assert ("TX_CHECKSUM_OFFLOAD" in caps) == offload
            assert ("GSO" in caps) == offload
            assert "RX_CHECKSUM_OFFLOAD" not in caps
            assert "RESOLUTION_REQUIRED" in caps


def test_namespace_and_tap_errors() -> None:
    name = unique_name()
    ns = Namespace.create(name)
    try:
        with pytest.raises(NamespaceError, match="already exists"):
            Namespace.create(name)
        tap = ns.create_tap(TAP)
        try:
            assert ns.index(TAP) > 0
            # the kernel side got the name: a second tap of that name cannot go in
            with pytest.raises(NamespaceError, match="already in use"):
                ns.create_tap(TAP)
            ns.add_address(TAP, f"{KERNEL4}/24")
            with pytest.raises(NamespaceError, match="already in use"):
                ns.add_address(TAP, f"{KERNEL4}/24")
        finally:
            tap.close()
        local = TapEndpoint.open(TAP)
        try:
            with pytest.raises(TapError, match="already in use"):
                TapEndpoint.open(TAP)
        finally:
            local.close()
        with pytest.raises(TapError, match="missing"):
            TapEndpoint.open(TAP, path="/nonexistent/tun")
    finally:
        ns.delete()
    assert not ns.exists()
    with pytest.raises(NamespaceError, match="not found"):
        Namespace(name).link_up("lo")


def test_errors_without_privileges() -> None:
    """Root without capabilities: one clear line each, not a traceback from below."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    name = unique_name()
    script = (
        "import sys\n"
        "from ustack.link.tap import TapEndpoint, TapError\n"
        "from ustack.netns import Namespace, NamespaceError\n"
        "try:\n"
        "    TapEndpoint.open('usttapx')\n"
        "except TapError as e:\n"
        "    print('tap:', e)\n"
        "try:\n"
        "    Namespace.create(sys.argv[1])\n"
        "except NamespaceError as e:\n"
        "    print('ns:', e)\n"
    )
    result = subprocess.run(
        ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
         sys.executable, "-c", script, name],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("tap: [Errno 1]") and "CAP_NET_ADMIN" in lines[0]
    assert lines[1].startswith("ns: [Errno 1]") and "run as root" in lines[1]
    assert not Namespace(name).exists()


# --- TCP segmentation offload towards the kernel, without ustack's TCP -----------------------

class RawTap:
    """A tap in a fresh namespace driven by hand: frames built here, frames read back here."""

    def __init__(self, ns: Namespace, tap: TapEndpoint) -> None:
        self.ns = ns
        self.tap = tap
        self.kernel_mac = ns.link_address(TAP)
        self.frames: list[tuple[int, bytes]] = []
        self.verified: list[bool] = []
        tap.attach(self)

    def deliver_network_packet(self, ethertype: int, pkt: PacketBuffer) -> None:
        self.frames.append((ethertype, bytes(pkt.body())))
        self.verified.append(pkt.checksum_verified)

    def send(self, family: int, flags: int, seq: int, ack: int, payload: bytes = b"",
             options: bytes = b"", gso_size: int = 0) -> int:
        """One TCP segment (or a GSO super-segment) from ustack's address, port 40000."""
        v4 = family == socket.AF_INET
        src = socket.inet_pton(family, USTACK4 if v4 else USTACK6)
        dst = socket.inet_pton(family, KERNEL4 if v4 else KERNEL6)
        pkt = PacketBuffer(100, payload)
        hlen = tcp_wire.MIN_HEADER_LEN + len(options)
        header = pkt.prepend(hlen)
        tcp_wire.build_header_into(header, 0, src_port=40000, dst_port=8000, seq=seq, ack=ack,
                                   flags=flags, window=65535, options=options)
        length = hlen + len(payload)
        # a partial checksum: the pseudo-header sum, finished by the kernel (virtio NEEDS_CSUM)
        struct.pack_into("!H", header, 16,
                         checksum.pseudo_header_sum(src, dst, IPProto.TCP, length))
        pkt.csum_partial = (length, 16)
        pkt.gso_size = gso_size
        if v4:
            ipv4_wire.build_into(pkt.prepend(20), 0, total_length=20 + length,
                                 protocol=IPProto.TCP, src=src, dst=dst, dont_fragment=True)
            pkt.network_protocol = EtherType.IPV4
        else:
            ipv6_wire.build_into(pkt.prepend(40), 0, payload_length=length,
                                 next_header=IPProto.TCP, src=src, dst=dst)
            pkt.network_protocol = EtherType.IPV6
        pkt.dst_link = self.kernel_mac
        return self.tap.write_packets([pkt])

    def segments(self, family: int) -> Iterator[tuple[int, int, int]]:
        """(sequence number, flags, payload length) of the kernel's TCP segments so far."""
        ethertype, offset = ((EtherType.IPV4, 20) if family == socket.AF_INET
                             else (EtherType.IPV6, 40))
        for kind, packet in self.frames:
            if kind != ethertype or len(packet) < offset + 20:
                continue
            sport, _, seq, _, off, flags = struct.unpack_from("!HHIIBB", packet, offset)
            if sport == 8000:
                yield seq, flags, len(packet) - offset - (off >> 4) * 4

    def poll(self, done: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "timed out waiting for the kernel"
            select.select([self.tap.fileno()], [], [], 0.1)
            self.tap.read_batch()

    def wait_syn_ack(self, family: int) -> int:
        """The kernel's initial sequence number, from its SYN-ACK."""
        synack = tcp_wire.SYN | tcp_wire.ACK

        def found() -> list[int]:
            return [seq for seq, flags, _ in self.segments(family) if flags & synack == synack]

        self.poll(lambda: bool(found()))
        return found()[0]

    def wait_data(self, family: int, total: int) -> list[int]:
        """Payload sizes of the kernel's data segments, once ``total`` bytes were seen."""

        def sizes() -> list[int]:
            return [n for _, _, n in self.segments(family) if n]

        self.poll(lambda: sum(sizes()) >= total)
        return sizes()


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "nooffload"])
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])
def test_tcp_offloads_with_kernel(family: int, offload: bool) -> None:
    """Hand-made TCP against the kernel's: GSO super-frames out, TSO super-frames in.

    With offloads, 20000 bytes go out as one super-frame with a partial checksum,
    as ustack's TCP will send them, and the kernel's first flight comes back as a
    TSO super-frame marked checksum-verified. Without, both directions carry
    frames that fit the MTU, with complete checksums from the kernel.
    """
    ns = Namespace.create(unique_name())
    try:
        tap = ns.create_tap(TAP, mtu=1500, offload=offload)
        try:
            assert ("GSO" in str(tap.capabilities)) == offload
            ns.add_address(TAP, f"{KERNEL4}/24")
            ns.add_address(TAP, f"{KERNEL6}/64")
            ns.add_neighbor(TAP, USTACK4, tap.link_address)
            ns.add_neighbor(TAP, USTACK6, tap.link_address)
            raw = RawTap(ns, tap)
            kernel_tcp_exchange(raw, family, offload)
            assert tap.stats["drops"] == 0
        finally:
            tap.close()
    finally:
        ns.delete()


def kernel_tcp_exchange(raw: RawTap, family: int, offload: bool) -> None:
    listener = pyroute2_netns.create_socket(raw.ns.name, family, socket.SOCK_STREAM)
    stats = raw.tap.stats
    try:
        listener.bind((KERNEL4 if family == socket.AF_INET else KERNEL6, 8000))
        listener.listen(1)
        listener.settimeout(5.0)
        iss = 1_000_000
        mss = b"\x02\x04\x05\xb4"  # 1460
        assert raw.send(family, tcp_wire.SYN, iss, 0, options=mss) == 1
        their_iss = raw.wait_syn_ack(family)
        raw.send(family, tcp_wire.ACK, iss + 1, their_iss + 1)
        conn, _ = listener.accept()
        conn.settimeout(5.0)
        payload = secrets.token_bytes(20000)
        flags = tcp_wire.ACK | tcp_wire.PSH
        if offload:
            assert raw.send(family, flags, iss + 1, their_iss + 1, payload, gso_size=1440) == 1
            assert stats["tap.tx_gso"] == 1
        else:
            for at in range(0, len(payload), 1440):
                raw.send(family, flags, iss + 1 + at, their_iss + 1, payload[at:at + 1440])
            assert stats["tap.tx_gso"] == 0
        received = b""
        while len(received) < len(payload):
            chunk = conn.recv(65536)
            assert chunk, "connection closed early"
            received += chunk
        assert received == payload
        # the other way: the kernel's first flight (initial window 10 segments)
        raw.frames.clear()
        raw.verified.clear()
        conn.sendall(secrets.token_bytes(8000))
        sizes = raw.wait_data(family, 8000)
        if offload:
            assert max(sizes) > 1460 and stats["tap.rx_gso"] >= 1
            assert all(raw.verified)
        else:
            assert max(sizes) <= 1460 and stats["tap.rx_gso"] == 0
            assert not any(raw.verified)
        conn.close()
    finally:
        listener.close()


def test_bad_input_and_write_errors_are_counted_not_raised() -> None:
    ns = Namespace.create(unique_name())
    try:
        tap = ns.create_tap(TAP, mtu=1500, up=False)
        try:
            raw = RawTap(ns, tap)
            frame = raw.kernel_mac + tap.link_address + b"\x08\x00" + bytes(40)
            cases = [
                vnet.build(flags=0x40) + frame,  # unknown flag
                vnet.build(gso_type=9, gso_size=100) + frame,  # unknown GSO type
                vnet.build(flags=vnet.F_NEEDS_CSUM, csum_start=50, csum_offset=6) + frame,
                vnet.build(gso_type=vnet.GSO_TCPV4) + frame,  # GSO without a segment size
                vnet.build(gso_type=vnet.GSO_UDP_L4, gso_size=100) + frame,  # never negotiated
                vnet.build()[:8],  # shorter than the header
                vnet.build() + frame[:10],  # shorter than an Ethernet header
            ]
            for data in cases:  # as if read from the fd: the receive path on its own
                tap._rxbuf[:len(data)] = data
                tap._receive(len(data))
            assert raw.frames == []
            assert tap.stats["tap.rx_bad_vnet"] == 5
            assert tap.stats["drops"] == len(cases)
            tap._rxbuf[:vnet.HEADER_LEN + len(frame)] = vnet.build(flags=vnet.F_DATA_VALID) + frame
            tap._receive(vnet.HEADER_LEN + len(frame))
            assert raw.frames == [(EtherType.IPV4, bytes(40))] and raw.verified == [True]
            # the kernel side is down: writes fail with EIO, counted as drops
            pkt = PacketBuffer(14, bytes(40))
            pkt.dst_link = raw.kernel_mac
            pkt.network_protocol = EtherType.IPV4
            assert tap.write_packets([pkt]) == 0
            assert tap.stats["tap.tx_error.EIO"] == 1
            assert tap.stats["tap.tx.drop.link_down"] == 1
        finally:
            tap.close()
        tap.close()  # twice is fine
    finally:
        ns.delete()


def test_batch_cap_keeps_the_loop_fair() -> None:
    ns = Namespace.create(unique_name())
    try:
        tap = ns.create_tap(TAP, mtu=1500, batch=2)
        try:
            ns.add_address(TAP, f"{KERNEL4}/24")
            ns.add_neighbor(TAP, USTACK4, tap.link_address)
            raw = RawTap(ns, tap)
            # nobody answers: five echo requests wait in the tap's queue
            subprocess.run(["ip", "netns", "exec", ns.name, "ping", "-n", "-q", "-c", "5",
                            "-i", "0.01", "-W", "0.2", USTACK4],
                           capture_output=True, timeout=30, check=False)
            counts = [tap.read_batch() for _ in range(3)]
            assert counts[:2] == [2, 2]
            tap.batch = 1000
            rest = tap.read_batch()
            assert tap.read_batch() == 0  # drained: EAGAIN ends the batch
            assert sum(counts) + rest == len(raw.frames) >= 5
            echoes = [p for kind, p in raw.frames if kind == EtherType.IPV4 and p[9] == 1]
            assert len(echoes) == 5
        finally:
            tap.close()
        assert tap.read_batch() == 0
    finally:
        ns.delete()
