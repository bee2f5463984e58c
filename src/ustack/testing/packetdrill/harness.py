# SPDX-License-Identifier: MIT
"""The stack under test on a virtual clock, and the wire the runner plays the far end of.

One stack with one NIC on a channel link with no peer: the runner injects the
script's inbound frames into it and reads, with the virtual time of each, the
frames the stack wrote. Addresses are packetdrill's defaults: the stack is the
"local" host, the script's peer the "remote" one, reached through a gateway whose
link address is static (nothing is resolved on the wire).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ustack.clock import VirtualClock
from ustack.link.channel import ChannelEndpoint
from ustack.stack import Stack, StackOptions
from ustack.transport.tcp.config import TCPConfig
from ustack.transport.tcp.protocol import TCPProtocol
from ustack.wire import ethernet
from ustack.wire.proto import EtherType

STACK_MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")


@dataclass(frozen=True)
class Addresses:
    """Who is who, per IP version (packetdrill's --local_ip, --remote_ip, --gateway_ip)."""

    local: str
    remote: str
    gateway: str
    prefix: int

    @classmethod
    def defaults(cls, version: int) -> Addresses:
        if version == 4:
            return cls("192.168.0.1", "192.0.2.1", "192.168.0.2", 16)
        return cls("fd3d:fa7b:d17d::1", "fd3d:fa7b:d17d:8888::1", "fd3d:fa7b:d17d::2", 48)

    def packed(self) -> tuple[bytes, bytes]:
        return (ipaddress.ip_address(self.local).packed,
                ipaddress.ip_address(self.remote).packed)


class Capture(list[bytes]):
    """A link's ``written`` list that also notes when each frame was written."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock
        self.times: list[float] = []

    def append(self, frame: bytes) -> None:
        self.times.append(self.clock.now())
        super().append(frame)


class Harness:
    def __init__(self, config: TCPConfig, addrs: Addresses, mtu: int = 1500) -> None:
        self.clock = VirtualClock()
        self.addrs = addrs
        self.stack = Stack(self.clock, options=StackOptions(announce=False, slaac=False), seed=1)
        self.tcp = TCPProtocol(self.stack, config)
        self.stack.register_transport_protocol(self.tcp)
        self.link = ChannelEndpoint(self.clock, STACK_MAC, mtu)
        self.capture = Capture(self.clock)
        self.link.written = self.capture
        self.nic = self.stack.create_nic(self.link, "eth0")
        version = ipaddress.ip_address(addrs.local).version
        self.stack.add_address("eth0", f"{addrs.local}/{addrs.prefix}", dad=False)
        self.stack.add_route("default" if version == 4 else "default6", addrs.gateway, "eth0")
        cache = self.nic.neighbor_cache(EtherType.IPV4 if version == 4 else EtherType.IPV6)
        if cache is not None:
            for addr in (addrs.gateway, addrs.remote):
                cache.add_static(ipaddress.ip_address(addr).packed, PEER_MAC)
        self.start = self.clock.now()
        self._read = 0

    @property
    def config(self) -> TCPConfig:
        return self.tcp.config

    def now_usecs(self) -> int:
        """Time since the script started, in microseconds."""
        return round((self.clock.now() - self.start) * 1_000_000)

    def at(self, usecs: int) -> float:
        return self.start + usecs / 1_000_000

    def inject(self, l3: bytes, ethertype: int) -> None:
        """Put an IP packet on the wire towards the stack (processed at once)."""
        self.link.inject(ethernet.build(STACK_MAC, PEER_MAC, ethertype) + l3)
        self.clock.run_ready()

    def pending(self) -> bool:
        return self._read < len(self.capture)

    def take(self) -> tuple[int, bytes] | None:
        """The oldest frame not yet read, with its time (usecs since the start)."""
        if self._read >= len(self.capture):
            return None
        i = self._read
        self._read += 1
        return round((self.capture.times[i] - self.start) * 1_000_000), self.capture[i]
