# SPDX-License-Identifier: MIT
"""The DNS forwarder's real upstream path on a real asyncio loop: a ustack guest asks the
gateway, which relays through a kernel UDP socket to a stub server on 127.0.0.1
(loopback only) and relays the answer back."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from scapy.layers.dns import DNS, DNSQR, DNSRR

from ustack import aio
from ustack.clock import RealClock
from ustack.forward.config import GuestNetwork
from ustack.forward.services import GuestServices
from ustack.link.channel import ChannelEndpoint
from ustack.stack import Stack, StackOptions


class StubServer(asyncio.DatagramProtocol):
    """Answers every A query with 192.0.2.7 and remembers the IDs it saw."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's transport; CPython's selector one is no DatagramTransport subclass
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        asked = DNS(data)
        self.seen.append(asked.id)
        reply = DNS(id=asked.id, qr=1, rd=asked.rd, ra=1, qd=asked.qd,
                    an=DNSRR(rrname=asked.qd[0].qname, type="A", rdata="192.0.2.7"))
        assert self.transport is not None
        self.transport.sendto(bytes(reply), addr)


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.answers.put_nowait(data)


async def scenario() -> tuple[DNS, list[int], int]:
    loop = asyncio.get_running_loop()
    stub_transport, stub = await loop.create_datagram_endpoint(
        StubServer, local_addr=("127.0.0.1", 0))
    port = stub_transport.get_extra_info("sockname")[1]
    clock = RealClock(loop)
    gateway = Stack(clock, options=StackOptions(slaac=False), seed=3)
    guest = Stack(clock, options=StackOptions(slaac=False))
    link_gw, link_guest = ChannelEndpoint.pair(clock)
    nic_gw = gateway.create_nic(link_gw)
    guest.create_nic(link_guest)
    guest.add_address(None, "10.0.2.100/24")
    services = GuestServices(gateway, nic_gw, GuestNetwork(dns_upstream=[]),
                             dns_servers=[("127.0.0.1", port)])
    services.start()
    transport, collector = await aio.create_datagram_endpoint(
        guest, Collector, remote_addr=("10.0.2.2", 53))
    assert isinstance(collector, Collector)
    try:
        transport.sendto(bytes(DNS(id=0xABCD, rd=1, qd=DNSQR(qname="host.example"))))
        data = await asyncio.wait_for(collector.answers.get(), 5.0)
        return DNS(data), stub.seen, gateway.stats["dns.rx_upstream"]
    finally:
        transport.close()
        services.close()
        stub_transport.close()
        await asyncio.sleep(0)


def test_real_upstream_over_loopback() -> None:
    answer, seen, relayed = asyncio.run(scenario())
    assert (answer.id, answer.qr, answer.rcode) == (0xABCD, 1, 0)
    assert answer.qd[0].qname == b"host.example."
    assert answer.an[0].rdata == "192.0.2.7"
    assert len(seen) == 1 and seen != [0xABCD]  # the ID was remapped (seeded stack)
    assert relayed == 1
