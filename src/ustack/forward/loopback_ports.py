# SPDX-License-Identifier: MIT
"""Outbound port forwarding, as pasta's ``-T``/``-U``: the guest's own loopback ports
reach the host's loopback.

``ustack run -T 5432`` lets the command connect to 127.0.0.1:5432 (and [::1]:5432)
*inside its namespace* and reach a database listening on the host's loopback, which
the gateway address alone cannot do for a service that checks for a loopback peer.

The listening sockets must live in the guest's network namespace: a socket belongs
to the namespace it was created in (network_namespaces(7)). The guest child,
already inside, opens them with :func:`open_loopback_sockets` and hands them over
with the tap fd by ``SCM_RIGHTS`` (unix(7)); joining the namespace from this
process instead would need setns(2) and, without root, the guest's user namespace,
which a multithreaded process cannot join. :class:`LoopbackForwarder` then runs on
the event loop here, in the host's namespace:

- TCP: each accepted connection is matched with a new connection to the host's
  loopback of the same family (127.0.0.1 or ::1) and HOSTPORT, and bytes are
  copied both ways with backpressure (a side is read only once the other took
  the previous chunk). EOF maps to shutdown(SHUT_WR), a reset to an abortive
  close; a refused host connection resets the guest's.
- UDP: each guest source address and port is a flow with a host socket of its
  own connected to the host's loopback HOSTPORT; replies go back to that source.
  Flows idle for ``udp_idle`` seconds are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ustack.forward.guest_errors import PortForwardError

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
_LINGER_ABORT = struct.pack("ii", 1, 0)
LOOPBACK = {4: "127.0.0.1", 6: "::1"}
_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}


@dataclass
class LoopbackSocket:
    """A socket bound to the guest's loopback: ``proto`` "tcp" or "udp", IP version, port."""

    proto: str
    version: int
    port: int
    sock: socket.socket

    def describe(self) -> list[object]:
        return [self.proto, self.version, self.port]


def _bind(proto: str, version: int, port: int) -> socket.socket:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    try:
        sock = socket.socket(_FAMILY[version], kind)
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise PortForwardError(exc.errno, "too many -T/-U ports for the open file limit: "
                                   "forward fewer, or raise it (ulimit -n)") from None
        raise
    try:
        if version == 6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK[version], port))
        if proto == "tcp":
            sock.listen(128)
    except OSError as exc:
        sock.close()
        where = f"{LOOPBACK[version]}:{port}" if version == 4 else f"[::1]:{port}"
        flag = "-T" if proto == "tcp" else "-U"
        if exc.errno == errno.EADDRINUSE:
            raise PortForwardError(errno.EADDRINUSE, f"{proto.upper()} port {where} is in "
                                    f"use in the guest namespace: pick another with {flag} "
                                    "PORT:HOSTPORT") from None
        raise PortForwardError(exc.errno or errno.EIO, f"binding the guest's {proto.upper()} "
                                f"{where} for {flag}: {exc.strerror}") from None
    return sock


def to_ranges(ports: Iterable[int]) -> list[list[int]]:
    """Ports as [first, last] runs (so -T 1-65535 passes to the guest child in a few bytes)."""
    runs: list[list[int]] = []
    for port in sorted(set(ports)):
        if runs and runs[-1][1] == port - 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return runs


def from_ranges(runs: Iterable[list[int]]) -> list[int]:
    return [port for first, last in runs for port in range(first, last + 1)]


def open_loopback_sockets(tcp_ports: Iterable[int], udp_ports: Iterable[int],
                          versions: Iterable[int]) -> list[LoopbackSocket]:
    """Bind the guest-side sockets (call inside the guest's namespace, with lo up)."""
    opened: list[LoopbackSocket] = []
    try:
        for proto, ports in (("tcp", tcp_ports), ("udp", udp_ports)):
            for port in ports:
                for version in versions:
                    opened.append(LoopbackSocket(proto, version, port,
                                                 _bind(proto, version, port)))
    except BaseException:
        for item in opened:
            item.sock.close()
        raise
    return opened


def _abort(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
    sock.close()


class _UDPFlow:
    def __init__(self, forwarder: LoopbackForwarder, listener: socket.socket,
                 client: tuple[str, int], host: socket.socket) -> None:
        self.listener = listener
        self.client = client
        self.host = host
        self.last_active = time.monotonic()
        self.loop = forwarder.loop
        self.loop.add_reader(host.fileno(), self._reply)

    def _reply(self) -> None:
        for _ in range(64):
            try:
                data = self.host.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ECONNREFUSED: nothing listens on the host port
                return
            self.last_active = time.monotonic()
            with contextlib.suppress(OSError):
                self.listener.sendto(data, self.client)

    def send(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        with contextlib.suppress(OSError):
            self.host.send(data)

    def close(self) -> None:
        self.loop.remove_reader(self.host.fileno())
        self.host.close()


class LoopbackForwarder:
    """Serve the guest's loopback sockets: ``tcp``/``udp`` map guest port -> host port."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: list[LoopbackSocket],
                 tcp: dict[int, int], udp: dict[int, int], *, udp_idle: float = 180.0,
                 sweep_interval: float = 10.0) -> None:
        self.loop = loop
        self.sockets = sockets
        self.tcp = tcp
        self.udp = udp
        self.udp_idle = udp_idle
        self.sweep_interval = sweep_interval
        self.udp_flows: dict[tuple[int, tuple[str, int]], _UDPFlow] = {}
        self.connections = 0
        self.refused = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False

    def start(self) -> None:
        for item in self.sockets:
            item.sock.setblocking(False)
            if item.proto == "tcp":
                self.loop.add_reader(item.sock.fileno(), self._accept, item)
            else:
                self.loop.add_reader(item.sock.fileno(), self._datagram, item)
        if any(item.proto == "udp" for item in self.sockets):
            self._sweeper = self.loop.call_later(self.sweep_interval, self._sweep)

    # --- TCP ---------------------------------------------------------------------------------

    def _accept(self, item: LoopbackSocket) -> None:
        for _ in range(64):
            try:
                conn, _addr = item.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            conn.setblocking(False)
            task = self.loop.create_task(self._relay(conn, item.version, self.tcp[item.port]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _relay(self, guest: socket.socket, version: int, host_port: int) -> None:
        host = socket.socket(_FAMILY[version], socket.SOCK_STREAM)
        host.setblocking(False)
        try:
            await self.loop.sock_connect(host, (LOOPBACK[version], host_port))
        except OSError:
            self.refused += 1
            host.close()
            _abort(guest)  # as the host did: the guest sees a reset
            return
        except asyncio.CancelledError:
            host.close()
            guest.close()
            raise
        self.connections += 1
        for sock in (guest, host):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pumps = [self.loop.create_task(self._pump(guest, host)),
                 self.loop.create_task(self._pump(host, guest))]
        reset = False
        try:
            for pump in asyncio.as_completed(pumps):
                if not await pump:
                    reset = True
                    break
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            if reset:
                _abort(guest)
                _abort(host)
            else:
                guest.close()
                host.close()

    async def _pump(self, src: socket.socket, dst: socket.socket) -> bool:
        """Copy until EOF (then half-close ``dst``); False when a side was reset."""
        try:
            while data := await self.loop.sock_recv(src, CHUNK):
                await self.loop.sock_sendall(dst, data)
        except OSError:
            return False
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        return True

    # --- UDP ---------------------------------------------------------------------------------

    def _datagram(self, item: LoopbackSocket) -> None:
        for _ in range(64):
            try:
                data, client = item.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            key = (item.sock.fileno(), (client[0], client[1]))
            flow = self.udp_flows.get(key)
            if flow is None:
                host = socket.socket(_FAMILY[item.version], socket.SOCK_DGRAM)
                host.setblocking(False)
                try:
                    host.connect((LOOPBACK[item.version], self.udp[item.port]))
                except OSError:
                    host.close()
                    continue
                flow = self.udp_flows[key] = _UDPFlow(self, item.sock, key[1], host)
            flow.send(data)

    def _sweep(self) -> None:
        now = time.monotonic()
        for key, flow in list(self.udp_flows.items()):
            if now - flow.last_active > self.udp_idle:
                flow.close()
                del self.udp_flows[key]
        self._sweeper = self.loop.call_later(self.sweep_interval, self._sweep)

    # --- ending ------------------------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for item in self.sockets:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(item.sock.fileno())
            item.sock.close()
        for flow in self.udp_flows.values():
            flow.close()
        self.udp_flows.clear()
        for task in self._tasks:
            task.cancel()


__all__ = ["LoopbackForwarder", "LoopbackSocket", "from_ranges", "open_loopback_sockets",
           "to_ranges"]
