# SPDX-License-Identifier: MIT
"""Guest pings to anywhere, carried over host ping sockets (SOCK_DGRAM, IPPROTO_ICMP[V6]).

Echo requests for ustack's own addresses are answered by the stack itself. Others
go out through an unprivileged ping socket (Linux ping_group_range), falling
back to a raw socket when that is refused and we may use one; the replies are
sent to the guest from the address it pinged, with its own identifier.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.wire import checksum, icmp4, icmp6
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.forward.forwarder import Forwarder

_ECHO = struct.Struct("!BBHHH")
FlowKey = tuple[bytes, bytes, int]  # guest, destination, guest's identifier


class EchoFlow:
    def __init__(self, fwd: Forwarder, sock: socket.socket, key: FlowKey, raw: bool) -> None:
        self.fwd = fwd
        self.sock = sock
        self.key = key
        self.raw = raw
        self.last_active = time.monotonic()
        fwd.loop.add_reader(sock.fileno(), self._from_host)

    def send(self, message: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            self.sock.send(message)
        except OSError:
            self.fwd.stack.stats.count("forward.icmp_send_error")

    def _from_host(self) -> None:
        guest, dst, ident = self.key
        v6 = len(dst) == 16
        for _ in range(32):
            try:
                data = self.sock.recv(65535)
            except OSError:
                return
            if self.raw and not v6:
                data = data[(data[0] & 0x0F) * 4:]  # raw IPv4 sockets include the IP header
            reply = icmp6.ECHO_REPLY if v6 else icmp4.ECHO_REPLY
            if len(data) < 8 or data[0] != reply:
                continue
            if self.raw and int.from_bytes(data[4:6], "big") != ident:
                continue
            self.last_active = time.monotonic()
            message = bytearray(data)
            message[2:4] = b"\0\0"
            message[4:6] = ident.to_bytes(2, "big")
            self.fwd.send_icmp(dst, guest, message)

    def close(self) -> None:
        self.fwd.loop.remove_reader(self.sock.fileno())
        self.sock.close()


class EchoForwarder:
    def __init__(self, fwd: Forwarder) -> None:
        self.fwd = fwd
        self.stack = fwd.stack
        self.flows: dict[FlowKey, EchoFlow] = {}

    def handle_echo(self, pkt: PacketBuffer) -> bool:
        body = bytes(pkt.body())
        if len(body) < 8:
            return False
        dst = pkt.dst_addr
        target = self.fwd.host_target(dst)
        if target is None:
            return False
        ident = int.from_bytes(body[4:6], "big")
        key = (pkt.src_addr, dst, ident)
        flow = self.flows.get(key)
        if flow is None:
            if len(self.flows) >= self.fwd.limits.max_icmp_flows:
                self.stack.stats.count("forward.icmp_table_full")
                return True
            flow = self._open(target, key)
            if flow is None:
                return True
            self.flows[key] = flow
        flow.send(body)
        self.stack.stats.count("forward.icmp_echo")
        return True

    def _open(self, target: bytes, key: FlowKey) -> EchoFlow | None:
        v6 = len(target) == 16
        family = socket.AF_INET6 if v6 else socket.AF_INET
        proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
        addr = socket.inet_ntop(family, target)
        for kind, raw in ((socket.SOCK_DGRAM, False), (socket.SOCK_RAW, True)):
            try:
                sock = socket.socket(family, kind, proto)
            except OSError:
                continue
            sock.setblocking(False)
            try:
                sock.connect((addr, 0))
            except OSError:
                sock.close()
                return None
            return EchoFlow(self.fwd, sock, key, raw)
        self.stack.stats.count("forward.icmp_no_socket")  # ping_group_range excludes us
        return None

    def expire(self, now: float, idle: float) -> None:
        for key, flow in list(self.flows.items()):
            if now - flow.last_active > idle:
                flow.close()
                del self.flows[key]

    def close(self) -> None:
        for flow in self.flows.values():
            flow.close()
        self.flows.clear()


def echo_checksum(message: bytearray, src: bytes, dst: bytes) -> None:
    """Fill an ICMP(v6) message's checksum (ICMPv6 covers a pseudo-header, RFC 4443 2.3)."""
    message[2:4] = b"\0\0"
    initial = 0
    if len(src) == 16:
        initial = checksum.pseudo_header_sum(src, dst, IPProto.ICMPV6, len(message))
    message[2:4] = checksum.checksum(message, initial).to_bytes(2, "big")
