# SPDX-License-Identifier: MIT
"""Port forwarding into the guest: ``-t PORT[:GUESTPORT]`` and ``-u`` likewise.

Host sockets listen on the host's ports; each connection (or UDP flow) is opened
into the guest by ustack *from the client's real address*, so the guest sees who
connected. The host's loopback shows up as the gateway address, since the guest
cannot reach 127.0.0.1 of the host.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ustack.forward.splice import Splice
from ustack.transport.datagram import DatagramEndpoint
from ustack.transport.tcp.endpoint import TCPEndpoint
from ustack.transport.tcp.state import State
from ustack.waiter import ERROR, HANGUP, WRITABLE
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.forward.forwarder import Forwarder


class PortSpecError(ValueError):
    pass


def _range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    try:
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise PortSpecError(f"not a port or range: {text!r}") from None
    if not 1 <= first <= last <= 65535:
        raise PortSpecError(f"ports must be within 1-65535: {text!r}")
    return list(range(first, last + 1))


def parse_ports(specs: Iterable[str]) -> list[tuple[int, int]]:
    """``"80"``, ``"8080:80"``, ``"1000-1010"``, ``"1000-1010:2000-2010"``, ``"80,443"``
    -> [(host port, guest port)]."""
    pairs: list[tuple[int, int]] = []
    for spec in specs:
        for item in spec.split(","):
            host_text, _, guest_text = item.strip().partition(":")
            host = _range(host_text)
            guest = _range(guest_text) if guest_text else host
            if len(guest) != len(host):
                raise PortSpecError(f"ranges differ in length: {item!r}")
            pairs.extend(zip(host, guest, strict=True))
    return pairs


def _listen(family: int, kind: int, port: int) -> socket.socket:
    sock = socket.socket(family, kind)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    if kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    except OSError as exc:
        sock.close()
        proto = "TCP" if kind == socket.SOCK_STREAM else "UDP"
        if exc.errno == errno.EADDRINUSE:
            raise OSError(errno.EADDRINUSE, f"host {proto} port {port} is in use: "
                          "pick another with -t/-u HOSTPORT:GUESTPORT") from None
        if exc.errno == errno.EACCES:
            raise OSError(errno.EACCES, f"host {proto} port {port} needs privileges (it is "
                          "below sysctl net.ipv4.ip_unprivileged_port_start): pick a higher "
                          "one with -t/-u HOSTPORT:GUESTPORT") from None
        raise
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    sock.setblocking(False)
    return sock


class PortForwarder:
    def __init__(self, fwd: Forwarder, tcp: list[tuple[int, int]],
                 udp: list[tuple[int, int]]) -> None:
        self.fwd = fwd
        self.loop = fwd.loop
        self._listeners: list[socket.socket] = []
        self.splices: set[Splice] = set()
        self._connecting: set[TCPEndpoint] = set()
        self.udp_flows: dict[tuple[int, str, int], _InboundUDP] = {}
        families = [socket.AF_INET] + ([socket.AF_INET6] if socket.has_ipv6 else [])
        try:
            for host_port, guest_port in tcp:
                for family in families:
                    sock = _listen(family, socket.SOCK_STREAM, host_port)
                    self._listeners.append(sock)
                    self.loop.add_reader(sock.fileno(), self._accept, sock, guest_port)
            for host_port, guest_port in udp:
                for family in families:
                    sock = _listen(family, socket.SOCK_DGRAM, host_port)
                    self._listeners.append(sock)
                    self.loop.add_reader(sock.fileno(), self._datagram, sock, guest_port)
        except BaseException:
            self.close()
            raise

    # --- TCP ---------------------------------------------------------------------------------

    def _accept(self, listener: socket.socket, guest_port: int) -> None:
        for _ in range(64):
            try:
                conn, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.fwd.stack.stats.count("forward.accept_error")
                return
            self._open_into_guest(conn, addr, guest_port)

    def _open_into_guest(self, conn: socket.socket, addr: tuple[str, int, ...], port: int,  # type: ignore[misc]
                         ) -> None:
        fwd = self.fwd
        client, guest = fwd.guest_view_of(addr[0])
        proto = fwd.stack.transport_protocols[IPProto.TCP]
        ep: TCPEndpoint = proto.new_endpoint(len(guest))  # type: ignore[attr-defined]
        try:
            ep.connect_from(client, addr[1], guest, port)
        except OSError:
            fwd.stack.stats.count("forward.inbound_tcp_failed")
            conn.close()
            return
        fwd.stack.stats.count("forward.inbound_tcp")
        self._connecting.add(ep)

        def ready(_events: int) -> None:
            if ep not in self._connecting:
                return
            if ep.state in (State.SYN_SENT, State.SYN_RECEIVED):
                ep.waiters.add(WRITABLE | ERROR | HANGUP, ready)
                return
            self._connecting.discard(ep)
            if ep.state is State.CLOSED:  # the guest refused: reset the host's client
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                conn.close()
                fwd.stack.stats.count("forward.inbound_tcp_refused")
                return
            self.splices.add(Splice(ep, conn, self.loop, self.splices.discard))

        ep.waiters.add(WRITABLE | ERROR | HANGUP, ready)

    # --- UDP ---------------------------------------------------------------------------------

    def _datagram(self, sock: socket.socket, guest_port: int) -> None:
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            key = (sock.fileno(), addr[0], addr[1])
            flow = self.udp_flows.get(key)
            if flow is None:
                client, guest = self.fwd.guest_view_of(addr[0])
                proto = self.fwd.stack.transport_protocols[IPProto.UDP]
                ep: DatagramEndpoint = proto.new_endpoint(len(guest))  # type: ignore[attr-defined]
                try:
                    ep.attach_connected(client, addr[1], guest, guest_port)
                except OSError:
                    self.fwd.stack.stats.count("forward.inbound_udp_failed")
                    continue
                flow = self.udp_flows[key] = _InboundUDP(ep, sock, addr)
            flow.last_active = time.monotonic()
            try:
                flow.ep.sendto(data, None)
            except OSError:
                self.fwd.stack.stats.count("forward.inbound_udp_failed")

    def expire(self, now: float, idle: float) -> None:
        for key, flow in list(self.udp_flows.items()):
            if now - flow.last_active > idle:
                flow.ep.close()
                del self.udp_flows[key]

    def close(self) -> None:
        for sock in self._listeners:
            self.loop.remove_reader(sock.fileno())
            sock.close()
        self._listeners.clear()
        for splice in list(self.splices):
            splice.abort()
        for flow in self.udp_flows.values():
            flow.ep.close()
        self.udp_flows.clear()


class _InboundUDP:
    def __init__(self, ep: DatagramEndpoint, sock: socket.socket,
                 addr: tuple[str, int, ...]) -> None:  # type: ignore[misc]
        self.ep = ep
        self.last_active = time.monotonic()

        def reply(data: bytes, _source: tuple[bytes, int]) -> None:
            self.last_active = time.monotonic()
            try:
                sock.sendto(data, addr)
            except OSError:
                pass

        ep.on_datagram = reply


def is_loopback(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return ip.is_loopback or (isinstance(ip, ipaddress.IPv6Address)
                              and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)
