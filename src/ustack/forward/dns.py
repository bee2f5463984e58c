# SPDX-License-Identifier: MIT
"""A DNS forwarder on the gateway addresses: the guest's queries go to the host's
resolvers over ordinary host sockets, and the answers come back to the guest.

Each query gets a fresh random ID upstream (the guest's IDs are not trusted to be
unique or unpredictable); an answer is accepted only from a server it was sent
to, with that ID and the same question (RFC 5452 section 9.1). Pending queries
are bounded; a query nobody answers in time moves to the next server, and after
the last one the guest gets SERVFAIL, as it does at once when there is no
upstream at all. Malformed queries are dropped and counted.

The upstream is an object with ``start``/``send``/``close``
(:class:`Upstream`): :class:`AsyncioUpstream` uses kernel sockets through
``loop.create_datagram_endpoint``; tests on the virtual clock pass a fake.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ustack.clock import Timer
from ustack.transport.udp import UDPEndpoint
from ustack.wire import dns as wire
from ustack.wire.errors import DropReason, ParseError

if TYPE_CHECKING:
    from ustack.stack import Stack

DNS_PORT = 53
#: host, port of an upstream server (host as ``ipaddress`` prints it)
Address = tuple[str, int]
ResponseHandler = Callable[[bytes, Address], None]
ErrorHandler = Callable[[Exception], None]


def normalize(address: Sequence[Any]) -> Address:
    """``("::1", 53, 0, 0)`` or ``("0:0::1", 53)`` -> ``("::1", 53)``."""
    return str(ipaddress.ip_address(str(address[0]).split("%")[0])), int(address[1])


class Upstream(Protocol):
    """Where queries go: something that sends datagrams to servers and hands back what
    comes from them. ``start`` is called once, before the first ``send``."""

    def start(self, on_response: ResponseHandler, on_error: ErrorHandler) -> None: ...

    def send(self, data: bytes, server: Address) -> None: ...

    def close(self) -> None: ...


class _HostProtocol(asyncio.DatagramProtocol):
    def __init__(self, upstream: AsyncioUpstream) -> None:
        self.upstream = upstream

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.upstream.on_response is not None:
            self.upstream.on_response(data, normalize(addr))

    def error_received(self, exc: Exception) -> None:
        if self.upstream.on_error is not None:
            self.upstream.on_error(exc)


class AsyncioUpstream:
    """One kernel UDP socket per address family (an ephemeral port), opened on first use
    with ``loop.create_datagram_endpoint`` on the running loop (the stack's loop)."""

    MAX_QUEUED = 64  # datagrams waiting for a socket to open

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self.on_response: ResponseHandler | None = None
        self.on_error: ErrorHandler | None = None
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._opening: dict[int, asyncio.Task[None]] = {}
        self._queued: dict[int, deque[tuple[bytes, Address]]] = {}
        self._closed = False

    def start(self, on_response: ResponseHandler, on_error: ErrorHandler) -> None:
        self.on_response = on_response
        self.on_error = on_error

    def send(self, data: bytes, server: Address) -> None:
        if self._closed:
            return
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        transport = self._transports.get(family)
        if transport is not None:
            transport.sendto(data, server)
            return
        queue = self._queued.setdefault(family, deque(maxlen=self.MAX_QUEUED))
        queue.append((data, server))
        if family not in self._opening:
            try:
                loop = self._loop or asyncio.get_running_loop()
            except RuntimeError as exc:  # not on a running loop: nothing can be sent
                self._queued.pop(family, None)
                if self.on_error is not None:
                    self.on_error(exc)
                return
            task = loop.create_task(self._open(loop, family))
            task.add_done_callback(self._opened)
            self._opening[family] = task

    async def _open(self, loop: asyncio.AbstractEventLoop, family: int) -> None:
        transport, _protocol = await loop.create_datagram_endpoint(
            lambda: _HostProtocol(self), family=family)
        if self._closed:
            transport.close()
            return
        self._transports[family] = transport
        for data, server in self._queued.pop(family, deque()):
            transport.sendto(data, server)

    def _opened(self, task: asyncio.Task[None]) -> None:
        family = next((f for f, t in self._opening.items() if t is task), None)
        if family is not None:
            del self._opening[family]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            if family is not None:
                self._queued.pop(family, None)
            if self.on_error is not None and isinstance(exc, Exception):
                self.on_error(exc)

    def close(self) -> None:
        self._closed = True
        for task in self._opening.values():
            task.cancel()
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
        self._queued.clear()


@dataclass
class Pending:
    """A query relayed upstream, under the ID ``upstream_id``."""

    endpoint: UDPEndpoint  # the guest asked this endpoint: it answers, from its address
    client: tuple[bytes, int]
    message: wire.Message  # the guest's query, parsed (its ID is the guest's)
    query: bytes  # as sent upstream
    server: int  # index of the server asked last
    asked: set[Address] = field(default_factory=set)
    timer: Timer | None = None


class DNSForwarder:
    def __init__(self, stack: Stack, addresses: Sequence[bytes], servers: Sequence[Address],
                 upstream: Upstream | None = None, *, timeout: float = 2.0,
                 max_pending: int = 256) -> None:
        """Listen on each of ``addresses`` port 53; relay to ``servers`` in order."""
        self.stack = stack
        self.addresses = list(addresses)
        self.servers = [normalize(s) for s in servers]
        self.upstream: Upstream = upstream if upstream is not None else AsyncioUpstream()
        self.timeout = timeout
        self.max_pending = max_pending
        self.pending: dict[int, Pending] = {}
        self._by_client: dict[tuple[bytes, int, int], int] = {}
        self._endpoints: list[UDPEndpoint] = []
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.upstream.start(self._from_upstream, self._upstream_error)
        try:
            for addr in self.addresses:
                ep = UDPEndpoint(self.stack, len(addr))
                ep.on_datagram = self._bind_handler(ep)
                self._endpoints.append(ep)
                ep.bind(addr, DNS_PORT)
        except BaseException:
            self.close()
            raise

    def _bind_handler(self, ep: UDPEndpoint) -> Callable[[bytes, tuple[bytes, int]], None]:
        return lambda data, source: self._from_guest(ep, data, source)

    def close(self) -> None:
        for ep in self._endpoints:
            ep.close()
        self._endpoints.clear()
        for entry in self.pending.values():
            if entry.timer is not None:
                entry.timer.cancel()
        self.pending.clear()
        self._by_client.clear()
        if self._started:
            self.upstream.close()
            self._started = False

    # --- from the guest --------------------------------------------------------------------

    def _from_guest(self, ep: UDPEndpoint, data: bytes, client: tuple[bytes, int]) -> None:
        stats = self.stack.stats
        try:
            msg = wire.parse(data)
        except ParseError as err:
            stats.drop("dns", err.reason)
            return
        head = msg.header
        # a query has QR clear and, in practice, exactly one question (RFC 9619)
        if head.is_response or len(msg.questions) != 1:
            stats.drop("dns", DropReason.BAD_MESSAGE)
            return
        stats.count("dns.rx_query")
        if head.opcode != wire.OPCODE_QUERY:
            self._answer(ep, client, wire.error_response(data, msg, wire.RCODE_NOTIMP))
            return
        if not self.servers:
            stats.count("dns.servfail_no_upstream")
            self._answer(ep, client, wire.error_response(data, msg, wire.RCODE_SERVFAIL))
            return
        known = self._by_client.get((client[0], client[1], head.id))
        if known is not None and known in self.pending:  # the guest retransmits
            stats.count("dns.retransmit")
            entry = self.pending[known]
            self._ask(entry, entry.server)
            return
        if len(self.pending) >= self.max_pending:
            stats.drop("dns", DropReason.QUEUE_FULL)
            return
        upstream_id = self._new_id()
        entry = Pending(ep, client, msg, wire.with_id(data, upstream_id), 0)
        self.pending[upstream_id] = entry
        self._by_client[(client[0], client[1], head.id)] = upstream_id
        self._ask(entry, 0)

    def _new_id(self) -> int:
        """A random ID not in use (there are at most max_pending of 65536 in use)."""
        while True:
            ident = self.stack.random.getrandbits(16)
            if ident not in self.pending:
                return ident

    def _ask(self, entry: Pending, server: int) -> None:
        entry.server = server
        address = self.servers[server]
        entry.asked.add(address)
        if entry.timer is not None:
            entry.timer.cancel()
        upstream_id = int.from_bytes(entry.query[:2], "big")
        entry.timer = self.stack.clock.call_later(self.timeout, self._timed_out, upstream_id)
        self.stack.stats.count("dns.tx_upstream")
        self.upstream.send(entry.query, address)

    def _timed_out(self, upstream_id: int) -> None:
        entry = self.pending.get(upstream_id)
        if entry is None:
            return
        entry.timer = None
        self.stack.stats.count("dns.upstream_timeout")
        if entry.server + 1 < len(self.servers):
            self._ask(entry, entry.server + 1)
            return
        self._forget(upstream_id, entry)
        self.stack.stats.count("dns.servfail_timeout")
        self._answer(entry.endpoint, entry.client,
                     wire.error_response(entry.query, entry.message, wire.RCODE_SERVFAIL))

    def _forget(self, upstream_id: int, entry: Pending) -> None:
        self.pending.pop(upstream_id, None)
        self._by_client.pop((entry.client[0], entry.client[1], entry.message.header.id), None)
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None

    # --- from upstream ---------------------------------------------------------------------

    def _from_upstream(self, data: bytes, server: Address) -> None:
        stats = self.stack.stats
        try:
            msg = wire.parse(data)
        except ParseError as err:
            stats.drop("dns_upstream", err.reason)
            return
        upstream_id = msg.header.id
        entry = self.pending.get(upstream_id)
        if (entry is None or not msg.header.is_response or normalize(server) not in entry.asked
                or len(msg.questions) != 1
                or not msg.questions[0].same_as(entry.message.questions[0])):
            stats.drop("dns_upstream", DropReason.NOT_FOR_US)  # late, stray or spoofed
            return
        self._forget(upstream_id, entry)
        stats.count("dns.rx_upstream")
        self._answer(entry.endpoint, entry.client, wire.with_id(data, entry.message.header.id))

    def _upstream_error(self, exc: Exception) -> None:
        self.stack.stats.count("dns.upstream_error")

    def _answer(self, ep: UDPEndpoint, client: tuple[bytes, int], data: bytes) -> None:
        if ep.closed:
            return
        try:
            ep.sendto(data, client)
        except OSError:
            self.stack.stats.drop("dns", DropReason.NO_ROUTE)
            return
        self.stack.stats.count("dns.tx_answer")
