# SPDX-License-Identifier: MIT
"""The forwarder: hooks the stack's unknown-destination paths to the flow tables, maps
addresses between the guest's view and the host's, and expires idle flows."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass
from typing import Any

from ustack.buffer import PacketBuffer
from ustack.forward.config import GuestNetwork
from ustack.forward.icmp import EchoForwarder, echo_checksum
from ustack.forward.portfwd import PortForwarder, is_loopback
from ustack.forward.tcp import TCPForwarder
from ustack.forward.udp import UDPForwarder
from ustack.nic import NIC
from ustack.stack import Stack
from ustack.wire import icmp4 as icmp4_wire
from ustack.wire import icmp6 as icmp6_wire
from ustack.wire.proto import EtherType, IPProto

LOOPBACK4 = ipaddress.ip_address("127.0.0.1").packed
LOOPBACK6 = ipaddress.ip_address("::1").packed

_V4_CODES = {"net": icmp4_wire.NET_UNREACHABLE, "host": icmp4_wire.HOST_UNREACHABLE,
             "admin": icmp4_wire.ADMIN_PROHIBITED, "port": icmp4_wire.PORT_UNREACHABLE}
_V6_CODES = {"net": icmp6_wire.NO_ROUTE, "host": icmp6_wire.ADDRESS_UNREACHABLE,
             "admin": icmp6_wire.ADMIN_PROHIBITED, "port": icmp6_wire.PORT_UNREACHABLE}


@dataclass
class Limits:
    max_tcp_flows: int = 16384
    max_udp_flows: int = 4096
    max_icmp_flows: int = 1024
    tcp_idle: float = 7200.0
    tcp_connect_timeout: float = 150.0
    udp_idle: float = 180.0  # conntrack's udp_timeout_stream
    icmp_idle: float = 60.0
    sweep_interval: float = 10.0


class Forwarder:
    def __init__(self, stack: Stack, nic: NIC, net: GuestNetwork,
                 loop: asyncio.AbstractEventLoop, limits: Limits | None = None) -> None:
        self.stack = stack
        self.nic = nic
        self.net = net
        self.loop = loop
        self.limits = limits or Limits()
        self.gateway4 = ipaddress.ip_address(net.gateway4).packed
        self.gateway6 = ipaddress.ip_address(net.gateway6).packed
        self.guest4 = ipaddress.ip_address(net.guest4).packed
        self.guest6 = ipaddress.ip_address(net.guest6).packed
        self._own = {self.gateway4, self.gateway6,
                     ipaddress.ip_address(net.gateway6_link_local).packed}
        self.tcp = TCPForwarder(self)
        self.udp = UDPForwarder(self)
        self.icmp = EchoForwarder(self)
        self.ports: PortForwarder | None = None
        nic.promiscuous = True
        nic.spoofing = True
        protocols = stack.transport_protocols
        for number, handler in ((IPProto.TCP, self.tcp), (IPProto.UDP, self.udp),
                                (IPProto.ICMP, self.icmp), (IPProto.ICMPV6, self.icmp)):
            if number in protocols:
                protocols[number].forwarder = handler  # type: ignore[attr-defined]
        self._sweeper = loop.call_later(self.limits.sweep_interval, self._sweep)

    def forward_ports(self, tcp: list[tuple[int, int]], udp: list[tuple[int, int]]) -> None:
        self.ports = PortForwarder(self, tcp, udp)

    # --- address mapping -------------------------------------------------------------------

    def host_target(self, dst: bytes) -> bytes | None:
        """Where on the host a guest's destination goes; None when it may not go anywhere
        (also for the family turned off by -4/-6: it is not forwarded)."""
        if not (self.net.ipv4 if len(dst) == 4 else self.net.ipv6):
            return None
        if dst in self._own:
            if not self.net.map_host_loopback:
                return None
            return LOOPBACK4 if len(dst) == 4 else LOOPBACK6
        ip = ipaddress.ip_address(dst)
        if ip.is_loopback or ip.is_unspecified or ip.is_multicast or ip.is_link_local:
            return None
        return dst

    def guest_view_of(self, client: str) -> tuple[bytes, bytes]:
        """(source the guest sees, guest address) for a host client's address."""
        ip = ipaddress.ip_address(client.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.version == 4:
            return (self.gateway4 if ip.is_loopback else ip.packed), self.guest4
        return (self.gateway6 if is_loopback(client) else ip.packed), self.guest6

    # --- sending to the guest ----------------------------------------------------------------

    def send_unreachable(self, pkt: PacketBuffer, kind: str) -> None:
        """An ICMP destination unreachable about a guest's packet, from the gateway."""
        ethertype = EtherType.IPV4 if len(pkt.src_addr) == 4 else EtherType.IPV6
        ep = self.nic.endpoints[ethertype]
        if ethertype == EtherType.IPV4:
            self.stack.network_protocols[ethertype].icmp.send_error(  # type: ignore[attr-defined]
                ep, pkt, icmp4_wire.DEST_UNREACHABLE, _V4_CODES[kind])
        else:
            self.stack.network_protocols[ethertype].icmp.send_error(  # type: ignore[attr-defined]
                ep, pkt, icmp6_wire.DEST_UNREACHABLE, _V6_CODES[kind])

    def send_icmp(self, src: bytes, dst: bytes, message: bytearray) -> None:
        """An ICMP message to the guest from ``src`` (any address: we spoof)."""
        try:
            route = self.stack.find_route(dst, src, self.nic.id)
        except OSError:
            self.stack.stats.count("forward.icmp_no_route")
            return
        echo_checksum(message, src, dst)
        number = IPProto.ICMP if len(dst) == 4 else IPProto.ICMPV6
        route.write_packet(PacketBuffer(route.max_header_length, bytes(message)), number)

    # --- housekeeping ------------------------------------------------------------------------

    def _sweep(self) -> None:
        now = time.monotonic()
        lim = self.limits
        self.tcp.expire(now, lim.tcp_idle, lim.tcp_connect_timeout)
        self.udp.expire(now, lim.udp_idle)
        self.icmp.expire(now, lim.icmp_idle)
        if self.ports is not None:
            self.ports.expire(now, lim.udp_idle)
        self._sweeper = self.loop.call_later(lim.sweep_interval, self._sweep)

    def counters(self) -> dict[str, Any]:
        return {"tcp_flows": len(self.tcp.flows), "tcp_connecting": len(self.tcp.pending),
                "udp_flows": len(self.udp.flows), "icmp_flows": len(self.icmp.flows),
                **{k: v for k, v in self.stack.stats.snapshot().items()
                   if k.startswith("forward.")}}

    def close(self) -> None:
        self._sweeper.cancel()
        for part in (self.tcp, self.udp, self.icmp, self.ports):
            if part is not None:
                part.close()
