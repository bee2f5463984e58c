# SPDX-License-Identifier: MIT
"""Guest TCP connections to anywhere, carried over host sockets.

A SYN for an address with no ustack endpoint starts a non-blocking host connect
to the same address and port (the gateway address maps to the host's loopback).
The guest's handshake completes only once the host side is connected: then
ustack answers the held SYN with a SYN-ACK and the two sides are spliced. A
refusal becomes a RST to the guest, an unreachable network or host an ICMP error.
"""

from __future__ import annotations

import errno
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.forward.splice import Splice
from ustack.transport.tcp.segment import ACK, RST, SYN, Segment
from ustack.wire import tcp as tcp_wire
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.forward.forwarder import Forwarder
    from ustack.transport.tcp.protocol import TCPProtocol

FlowKey = tuple[bytes, int, bytes, int]  # guest address, guest port, destination, port
UNREACHABLE = {errno.ENETUNREACH: "net", errno.EHOSTUNREACH: "host",
               errno.EADDRNOTAVAIL: "host", errno.EACCES: "admin", errno.EPERM: "admin"}


@dataclass
class _Pending:
    sock: socket.socket
    pkt: PacketBuffer  # the guest's SYN, answered once the host side connects
    seg: Segment
    started: float


class TCPForwarder:
    def __init__(self, fwd: Forwarder) -> None:
        self.fwd = fwd
        self.stack = fwd.stack
        self.loop = fwd.loop
        self.protocol: TCPProtocol = fwd.stack.transport_protocols[IPProto.TCP]  # type: ignore[assignment]
        self.pending: dict[FlowKey, _Pending] = {}
        self.flows: dict[FlowKey, Splice] = {}

    def __len__(self) -> int:
        return len(self.flows) + len(self.pending)

    def handle_tcp(self, pkt: PacketBuffer) -> bool:
        """The protocol's unknown-destination hook: True when we took the segment."""
        stats = self.stack.stats
        hdr: tcp_wire.TCPHeader = pkt.transport_header  # type: ignore[assignment]
        key = (pkt.src_addr, hdr.src_port, pkt.dst_addr, hdr.dst_port)
        if key in self.pending:
            stats.count("forward.tcp_syn_while_connecting")
            return True  # a retransmitted SYN: still connecting
        if hdr.flags & (SYN | ACK | RST) != SYN:
            return False  # no such connection: the protocol answers with a RST
        target = self.fwd.host_target(pkt.dst_addr)
        if target is None:
            stats.count("forward.tcp_refused_target")
            return False
        if len(self) >= self.fwd.limits.max_tcp_flows:
            stats.count("forward.tcp_table_full")
            return False
        try:
            seg = Segment.from_packet(pkt)
        except Exception:
            return False
        family = socket.AF_INET6 if len(target) == 16 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex((socket.inet_ntop(family, target), hdr.dst_port))
        stats.count("forward.tcp_connects")
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self._fail(pkt, seg, code)
            return True
        self.pending[key] = _Pending(sock, pkt, seg, time.monotonic())
        self.loop.add_writer(sock.fileno(), self._connected, key)
        return True

    def _connected(self, key: FlowKey) -> None:
        pending = self.pending.pop(key, None)
        if pending is None:
            return
        sock = pending.sock
        self.loop.remove_writer(sock.fileno())
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            sock.close()
            self._fail(pending.pkt, pending.seg, code)
            return
        ep = self.protocol.passive_open(pending.pkt, pending.seg)
        if ep is None:
            sock.close()
            self.stack.stats.count("forward.tcp_open_failed")
            return
        self.stack.stats.count("forward.tcp_flows")
        self.flows[key] = Splice(ep, sock, self.loop, lambda s: self.flows.pop(key, None))

    def _fail(self, pkt: PacketBuffer, seg: Segment, code: int) -> None:
        kind = UNREACHABLE.get(code)
        stats = self.stack.stats
        if kind is None:  # refused, reset, timed out: the guest sees a RST
            stats.count("forward.tcp_refused")
            self.protocol.reset_unknown(pkt, seg)
        else:
            stats.count(f"forward.tcp_unreachable_{kind}")
            self.fwd.send_unreachable(pkt, kind)

    def expire(self, now: float, idle: float, connect_timeout: float) -> None:
        for key, pending in list(self.pending.items()):
            if now - pending.started > connect_timeout:
                self.loop.remove_writer(pending.sock.fileno())
                pending.sock.close()
                del self.pending[key]
                self.stack.stats.count("forward.tcp_connect_timeout")
        for flow in list(self.flows.values()):
            if now - flow.last_active > idle:
                self.stack.stats.count("forward.tcp_idle_closed")
                flow.abort()

    def close(self) -> None:
        for pending in self.pending.values():
            self.loop.remove_writer(pending.sock.fileno())
            pending.sock.close()
        self.pending.clear()
        for flow in list(self.flows.values()):
            flow.abort()

