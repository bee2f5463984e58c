# SPDX-License-Identifier: MIT
"""Guest UDP flows carried over host UDP sockets, expired when idle.

The first datagram of a flow (guest address and port to destination and port)
creates a connected host socket and a ustack endpoint bound to the destination
(spoofed) and connected to the guest, which receives the rest of the flow's
datagrams by ordinary demux; the host socket's replies go back through it.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.transport.datagram import DatagramEndpoint
from ustack.wire import ipv4, ipv6
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.forward.forwarder import Forwarder

FlowKey = tuple[bytes, int, bytes, int]


class UDPFlow:
    def __init__(self, fwd: Forwarder, ep: DatagramEndpoint, sock: socket.socket,
                 key: FlowKey) -> None:
        self.fwd = fwd
        self.ep = ep
        self.sock = sock
        self.key = key
        self.last_active = time.monotonic()
        ep.on_datagram = self._from_guest
        fwd.loop.add_reader(sock.fileno(), self._from_host)

    def _from_guest(self, data: bytes, _source: tuple[bytes, int]) -> None:
        self.last_active = time.monotonic()
        try:
            self.sock.send(data)
        except OSError:
            self.fwd.stack.stats.count("forward.udp_host_send_error")

    def _from_host(self) -> None:
        for _ in range(64):
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            except OSError:  # an ICMP error from the host's side: nothing to relay
                self.fwd.stack.stats.count("forward.udp_host_error")
                return
            self.last_active = time.monotonic()
            try:
                self.ep.sendto(data, None)
            except OSError:
                self.fwd.stack.stats.count("forward.udp_guest_send_error")

    def close(self) -> None:
        self.fwd.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.ep.close()


class UDPForwarder:
    def __init__(self, fwd: Forwarder) -> None:
        self.fwd = fwd
        self.stack = fwd.stack
        self.flows: dict[FlowKey, UDPFlow] = {}

    def __len__(self) -> int:
        return len(self.flows)

    def handle_udp(self, pkt: PacketBuffer) -> bool:
        stats = self.stack.stats
        dst = pkt.dst_addr
        if ((len(dst) == 4 and (ipv4.is_multicast(dst) or dst == ipv4.BROADCAST
                               or (pkt.nic is not None and pkt.nic.is_broadcast(dst))))  # type: ignore[attr-defined]
                or (len(dst) == 16 and ipv6.is_multicast(dst))):
            stats.count("forward.udp_multicast_dropped")
            return True
        body = pkt.body()
        sport = int.from_bytes(body[0:2], "big")
        dport = int.from_bytes(body[2:4], "big")
        key = (pkt.src_addr, sport, dst, dport)
        target = self.fwd.host_target(dst)
        if target is None:
            return False
        if len(self.flows) >= self.fwd.limits.max_udp_flows:
            stats.count("forward.udp_table_full")
            return True
        family = socket.AF_INET6 if len(target) == 16 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect((socket.inet_ntop(family, target), dport))
        except OSError:
            sock.close()
            stats.count("forward.udp_unreachable")
            self.fwd.send_unreachable(pkt, "net")
            return True
        proto = self.stack.transport_protocols[IPProto.UDP]
        ep: DatagramEndpoint = proto.new_endpoint(len(dst))  # type: ignore[attr-defined]
        try:
            ep.attach_connected(dst, dport, pkt.src_addr, sport)
        except OSError:
            sock.close()
            return True
        flow = self.flows[key] = UDPFlow(self.fwd, ep, sock, key)
        stats.count("forward.udp_flows")
        flow._from_guest(bytes(body[8:]), (pkt.src_addr, sport))
        return True

    def expire(self, now: float, idle: float) -> None:
        for key, flow in list(self.flows.items()):
            if now - flow.last_active > idle:
                flow.close()
                del self.flows[key]
                self.stack.stats.count("forward.udp_expired")

    def close(self) -> None:
        for flow in self.flows.values():
            flow.close()
        self.flows.clear()
