# SPDX-License-Identifier: MIT
"""ping from a ustack stack (ICMP/ICMPv6 echo over ping sockets), on the stack's loop."""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import time
from dataclasses import dataclass, field

from ustack.stack import Stack
from ustack.transport.datagram import DatagramEndpoint
from ustack.wire import icmp4, icmp6
from ustack.wire.proto import IPProto

_SEQ = struct.Struct("!HH")


@dataclass
class PingResult:
    sent: int = 0
    received: int = 0
    rtts: list[float] = field(default_factory=list)

    @property
    def loss(self) -> float:
        return 1 - self.received / self.sent if self.sent else 0.0

    def summary(self, target: str) -> str:
        avg = sum(self.rtts) / len(self.rtts) * 1000 if self.rtts else 0.0
        return (f"{target}: {self.sent} sent, {self.received} received, "
                f"{self.loss:.0%} loss, avg rtt {avg:.3f} ms")


async def ping(stack: Stack, target: str, count: int = 3, interval: float = 0.2,
               timeout: float = 2.0, size: int = 56) -> PingResult:
    """Send ``count`` echo requests ``interval`` apart; wait ``timeout`` for the last."""
    addr = ipaddress.ip_address(target).packed
    v6 = len(addr) == 16
    number = IPProto.ICMPV6 if v6 else IPProto.ICMP
    endpoint: DatagramEndpoint = stack.transport_protocols[number].new_endpoint(  # type: ignore[attr-defined]
        len(addr))
    result = PingResult()
    sent_at: dict[int, float] = {}
    done = asyncio.Event()

    def received(data: bytes, _source: tuple[bytes, int]) -> None:
        if len(data) < 8:
            return
        seq = _SEQ.unpack_from(data, 4)[1]
        start = sent_at.pop(seq, None)
        if start is not None:
            result.received += 1
            result.rtts.append(time.monotonic() - start)
            if result.received == count:
                done.set()

    endpoint.on_datagram = received
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    request = icmp6.ECHO_REQUEST if v6 else icmp4.ECHO_REQUEST
    try:
        for seq in range(1, count + 1):
            sent_at[seq] = time.monotonic()
            message = bytes((request, 0, 0, 0)) + _SEQ.pack(0, seq) + payload
            endpoint.sendto(message, (addr, 0))
            result.sent += 1
            if seq < count:
                await asyncio.sleep(interval)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            pass
    finally:
        endpoint.close()
    return result
