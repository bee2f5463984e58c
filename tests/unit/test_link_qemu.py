# SPDX-License-Identifier: MIT
"""The qemu stream link (``-netdev stream`` framing: a 32-bit big-endian length before each
frame) between two ustack stacks, or a stack and a raw socket, on a real asyncio loop."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
import struct
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from ustack import aio
from ustack.apps.ping import ping
from ustack.buffer import PacketBuffer
from ustack.clock import RealClock
from ustack.link.qemu import (
    MAX_FRAME,
    QemuSocketError,
    QemuStreamEndpoint,
    QemuStreamServer,
)
from ustack.stack import Stack
from ustack.wire.proto import EtherType

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


class Recorder:
    """A NetworkDispatcher that keeps every frame it is given."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def deliver_network_packet(self, ethertype: int, pkt: PacketBuffer) -> None:
        self.frames.append(bytes(pkt.frame()))


def framed(frame: bytes) -> bytes:
    return struct.pack("!I", len(frame)) + frame


def eth_frame(size: int, seed: int) -> bytes:
    """A frame for MAC_B of ``size`` bytes (header included) with a recognisable body."""
    body = random.Random(seed).randbytes(size - 14)
    return MAC_B + MAC_A + struct.pack("!H", 0x88B5) + body  # 0x88B5: local experimental


def make_stack(loop: asyncio.AbstractEventLoop, link: QemuStreamEndpoint, index: int) -> Stack:
    stack = Stack(RealClock(loop), seed=index)
    stack.create_nic(link, "eth0")
    stack.add_address("eth0", f"10.0.0.{index}/24")
    stack.add_address("eth0", f"fd00::{index}/64", dad=False)
    link.start(loop)
    return stack


@asynccontextmanager
async def two_stacks(mtu: int) -> AsyncIterator[tuple[Stack, Stack, QemuStreamEndpoint,
                                                      QemuStreamEndpoint]]:
    loop = asyncio.get_running_loop()
    sa, sb = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    la = QemuStreamEndpoint(sa, mtu=mtu, mac=MAC_A)
    lb = QemuStreamEndpoint(sb, mtu=mtu, mac=MAC_B)
    a, b = make_stack(loop, la, 1), make_stack(loop, lb, 2)
    try:
        yield a, b, la, lb
    finally:
        a.close()
        b.close()
        la.close()
        lb.close()


@pytest.mark.parametrize("mtu", [1500, 65520])
def test_ping_both_families(mtu: int) -> None:
    async def main() -> tuple[int, int, dict[str, int]]:
        async with two_stacks(mtu) as (a, _b, la, _lb):
            v4 = await ping(a, "10.0.0.2", count=3, interval=0.02, timeout=2)
            v6 = await ping(a, "fd00::2", count=3, interval=0.02, size=3000, timeout=2)
            return v4.received, v6.received, la.stats.snapshot()

    v4, v6, stats = asyncio.run(main())
    assert (v4, v6) == (3, 3)
    assert stats["qemu.rx_frames"] >= 6
    assert stats.get("drops", 0) == 0


@pytest.mark.parametrize("mtu", [1500, 65520])
def test_tcp_transfer_sha256(mtu: int) -> None:
    payload = os.urandom(8 << 20)

    async def main() -> tuple[str, dict[str, int]]:
        async with two_stacks(mtu) as (a, b, la, _lb):
            digest: asyncio.Future[str] = asyncio.get_running_loop().create_future()

            async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                h = hashlib.sha256()
                while data := await reader.read(1 << 16):
                    h.update(data)
                digest.set_result(h.hexdigest())
                writer.close()

            server = await aio.start_server(b, sink, "0.0.0.0", 5001)
            _reader, writer = await aio.open_connection(a, "10.0.0.2", 5001)
            writer.write(payload)
            await writer.drain()
            writer.write_eof()
            got = await asyncio.wait_for(digest, 60)
            writer.close()
            server.close()
            return got, la.stats.snapshot()

    got, stats = asyncio.run(main())
    assert got == hashlib.sha256(payload).hexdigest()
    assert stats["qemu.tx_sendmsg"] < stats["qemu.tx_frames"]  # several frames per sendmsg
    assert stats.get("qemu.tx_queue_full", 0) == 0


def test_frames_split_across_reads() -> None:
    frames = [eth_frame(size, seed) for seed, size in enumerate([14, 60, 1514, 9000, 65534])]
    stream = b"".join(framed(f) for f in frames)

    async def main() -> tuple[list[bytes], dict[str, int]]:
        ours, theirs = socket.socketpair()
        link = QemuStreamEndpoint(ours, mac=MAC_B)
        recorder = Recorder()
        link.attach(recorder)
        link.start(asyncio.get_running_loop())
        # awkward cuts: inside the length prefix, right after it, inside a frame
        cuts = sorted({1, 3, 4, 5, 20, 77, 1600, 1601, 12000, len(stream) - 2, len(stream)})
        last = 0
        for reads, cut in enumerate(cuts, 1):
            theirs.sendall(stream[last:cut])
            last = cut
            for _ in range(1000):  # each piece is consumed by a read of its own
                await asyncio.sleep(0.001)
                if link.stats["qemu.rx_reads"] == reads:
                    break
        link.close()
        theirs.close()
        return recorder.frames, link.stats.snapshot()

    got, stats = asyncio.run(main())
    assert got == frames
    assert stats["qemu.rx_reads"] == 11
    assert stats.get("qemu.rx_bad_length", 0) == 0


def test_many_frames_per_read() -> None:
    frames = [eth_frame(60 + i, i) for i in range(300)]

    async def main() -> tuple[list[bytes], dict[str, int]]:
        ours, theirs = socket.socketpair()
        theirs.sendall(b"".join(framed(f) for f in frames))  # all waiting before the first read
        link = QemuStreamEndpoint(ours, mac=MAC_B)
        recorder = Recorder()
        link.attach(recorder)
        link.start(asyncio.get_running_loop())
        await asyncio.sleep(0.05)
        link.close()
        theirs.close()
        return recorder.frames, link.stats.snapshot()

    got, stats = asyncio.run(main())
    assert got == frames
    assert stats["qemu.rx_reads"] <= 2


@pytest.mark.parametrize("bad_length", [0, 13, MAX_FRAME + 1, 0xFFFFFFFF])
def test_malformed_length_drops_the_connection(bad_length: int) -> None:
    good = eth_frame(100, 1)

    async def main() -> tuple[list[bytes], dict[str, int], bytes, list[str]]:
        ours, theirs = socket.socketpair()
        link = QemuStreamEndpoint(ours, mac=MAC_B)
        reasons: list[str] = []
        link.on_disconnect = reasons.append
        recorder = Recorder()
        link.attach(recorder)
        link.start(asyncio.get_running_loop())
        theirs.sendall(framed(good) + struct.pack("!I", bad_length) + bytes(64) + framed(good))
        await asyncio.sleep(0.05)
        theirs.settimeout(1)
        eof = theirs.recv(10)  # the endpoint closed its end
        theirs.close()
        connected = link.connected
        link.close()
        assert not connected
        return recorder.frames, link.stats.snapshot(), eof, reasons

    got, stats, eof, reasons = asyncio.run(main())
    assert got == [good]  # the frame before the bad length, nothing after it
    assert eof == b""
    assert stats["qemu.rx_bad_length"] == 1
    assert stats["qemu.rx.drop.bad_length"] == 1
    assert stats["qemu.disconnects"] == 1
    assert reasons == [f"bad frame length {bad_length}"]


def _packet(size: int, dst: bytes = MAC_B) -> PacketBuffer:
    pkt = PacketBuffer(64, os.urandom(size))
    pkt.dst_link = dst
    pkt.network_protocol = EtherType.IPV4
    return pkt


def _parse_stream(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("!I", data, pos)
        assert pos + 4 + length <= len(data), "a partial frame in the stream"
        out.append(data[pos + 4:pos + 4 + length])
        pos += 4 + length
    return out


def test_write_queue_is_bounded_and_the_stream_stays_intact() -> None:
    async def main() -> tuple[int, int, list[bytes], dict[str, int]]:
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        link = QemuStreamEndpoint(ours, mac=MAC_A, queue_limit=256 << 10)
        link.attach(Recorder())
        link.start(asyncio.get_running_loop())
        sent: list[bytes] = []
        for i in range(200):  # 1.6 MB: far more than the socket buffer and the queue hold
            pkt = _packet(8000)
            body = pkt.to_bytes()  # before the link pushes its header
            if link.write_packets([pkt]) == 1:
                sent.append(body)
            if i % 10 == 9:
                await asyncio.sleep(0)  # the loop flushes what it can
        accepted = len(sent)
        blocked = link.stats["qemu.tx_blocked"]
        # the peer now reads everything; the queue drains on writability
        theirs.setblocking(False)
        received = bytearray()
        for _ in range(200):
            await asyncio.sleep(0.005)
            try:
                while chunk := theirs.recv(1 << 20):
                    received += chunk
            except BlockingIOError:
                pass
        link.close()
        theirs.close()
        frames = _parse_stream(bytes(received))
        # every frame that arrived is one that was accepted, whole and in order
        assert [f[14:] for f in frames] == sent
        return accepted, blocked, frames, link.stats.snapshot()

    accepted, blocked, frames, stats = asyncio.run(main())
    assert 0 < accepted < 200
    assert blocked >= 1
    assert len(frames) == accepted
    assert stats["qemu.tx_queue_full"] == 200 - accepted
    assert stats["qemu.tx.drop.queue_full"] == 200 - accepted


def test_writes_without_a_connection_are_dropped_and_counted() -> None:
    link = QemuStreamEndpoint(mac=MAC_A)
    assert link.write_packets([_packet(100), _packet(100)]) == 0
    assert link.stats["qemu.tx.drop.link_down"] == 2
    link.close()


@pytest.fixture
def sock_path() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="ustack-qemu-") as tmp:
        yield os.path.join(tmp, "passt.sock")


async def _connected(link: QemuStreamEndpoint, timeout: float = 2.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if link.connected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server did not take the connection")


def test_server_one_guest_at_a_time_and_reconnects(sock_path: str) -> None:
    async def main() -> tuple[list[int], bytes, dict[str, int], list[str]]:
        loop = asyncio.get_running_loop()
        server = QemuStreamServer(sock_path, mtu=1500, mac=MAC_A)
        events: list[str] = []
        server.on_connect = lambda: events.append("connect")
        server.on_disconnect = lambda reason: events.append(f"lost: {reason}")
        host = make_stack(loop, server.endpoint, 1)
        server.start(loop)
        received: list[int] = []
        try:
            vm1 = QemuStreamEndpoint.connect(sock_path, mtu=1500, mac=MAC_B)
            guest1 = make_stack(loop, vm1, 2)
            await _connected(server.endpoint)
            received.append((await ping(guest1, "10.0.0.1", count=2, interval=0.02)).received)

            # a second VM while the first is connected: accepted, then closed at once
            intruder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            intruder.connect(sock_path)
            intruder.settimeout(2)
            await asyncio.sleep(0.05)
            refused = await loop.run_in_executor(None, intruder.recv, 10)
            intruder.close()
            received.append((await ping(guest1, "10.0.0.1", count=2, interval=0.02)).received)

            # the first VM goes away; a new one is served, with a stack that restarted
            guest1.close()
            vm1.close()
            await asyncio.sleep(0.05)
            assert not server.endpoint.connected
            vm2 = QemuStreamEndpoint.connect(sock_path, mtu=1500, mac=MAC_B)
            guest2 = make_stack(loop, vm2, 2)
            await _connected(server.endpoint)
            received.append((await ping(guest2, "10.0.0.1", count=2, interval=0.02)).received)
            received.append((await ping(guest2, "fd00::1", count=2, interval=0.02)).received)
            guest2.close()
            vm2.close()
            await asyncio.sleep(0.05)
        finally:
            host.close()
            server.close()
            server.endpoint.close()
        assert not os.path.exists(sock_path)
        return received, refused, server.stats.snapshot(), events

    received, refused, stats, events = asyncio.run(main())
    assert received == [2, 2, 2, 2]
    assert refused == b""
    assert stats["qemu.server.accepted"] == 2
    assert stats["qemu.server.refused"] == 1
    assert events == ["connect", "lost: the peer closed the connection", "connect",
                      "lost: the peer closed the connection"]


def test_server_refuses_a_path_in_use(sock_path: str) -> None:
    first = QemuStreamServer(sock_path)
    try:
        with pytest.raises(QemuSocketError, match="in use by another process"):
            QemuStreamServer(sock_path)
        assert os.path.exists(sock_path)  # the live server's socket is left alone
    finally:
        first.close()
    assert not os.path.exists(sock_path)


def test_server_removes_a_stale_socket(sock_path: str) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)  # bound, never listening, then gone: what a crash leaves
    stale.close()
    assert os.path.exists(sock_path)
    with QemuStreamServer(sock_path) as server:
        client = QemuStreamEndpoint.connect(sock_path)
        client.close()
        assert server.path == sock_path
    assert not os.path.exists(sock_path)


def test_server_refuses_a_path_that_is_not_a_socket(sock_path: str) -> None:
    Path(sock_path).write_text("precious\n")
    with pytest.raises(QemuSocketError, match="not a socket"):
        QemuStreamServer(sock_path)
    assert Path(sock_path).read_text() == "precious\n"


def test_client_connect_error_is_one_line(sock_path: str) -> None:
    with pytest.raises(QemuSocketError, match="is ustack passt listening there"):
        QemuStreamEndpoint.connect(sock_path)
