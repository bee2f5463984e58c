# SPDX-License-Identifier: MIT
"""Transport demultiplexing: which endpoint gets an inbound packet.

Lookup is three dict probes, never a scan: the exact 4-tuple (connected
endpoints), then the local address and port (bound endpoints, listeners), then
the port alone (endpoints bound to the wildcard address).
"""

from __future__ import annotations

import errno
import random
from dataclasses import dataclass
from typing import TypeVar

from ustack.contracts import TransportEndpoint

EPHEMERAL_LOW = 32768  # Linux's net.ipv4.ip_local_port_range
EPHEMERAL_HIGH = 60999


@dataclass(eq=False)
class Binding:
    """One endpoint's claim on a local port."""

    endpoint: TransportEndpoint
    local_addr: bytes  # empty or all zeros: the wildcard
    local_port: int
    size: int  # 4 or 16
    reuse: bool = False  # SO_REUSEADDR
    reuse_port: bool = False  # SO_REUSEPORT
    remote: tuple[bytes, int] | None = None  # set once connected
    #: where the binding is listed: one of the three tables
    connected_key: tuple[bytes, int, bytes, int] | None = None
    bound_key: tuple[bytes, int] | None = None
    wildcard_key: tuple[int, int] | None = None

    @property
    def wildcard(self) -> bool:
        return not any(self.local_addr)


K = TypeVar("K")


def _remove_row(table: dict[K, list[Binding]], key: K, binding: Binding) -> None:
    rows = table.get(key)
    if rows and binding in rows:
        rows.remove(binding)
        if not rows:
            del table[key]


def _is_any(addr: bytes) -> bool:
    return not any(addr)


class EndpointTable:
    """The endpoints of one transport protocol (both address families)."""

    def __init__(self, rng: random.Random, name: str = "") -> None:
        self.name = name
        self._rng = rng
        self._connected: dict[tuple[bytes, int, bytes, int], TransportEndpoint] = {}
        self._bound: dict[tuple[bytes, int], list[Binding]] = {}
        self._wildcard: dict[tuple[int, int], list[Binding]] = {}
        self._ports: dict[tuple[int, int], list[Binding]] = {}

    def __len__(self) -> int:
        return sum(len(v) for v in self._ports.values())

    # --- lookup (hot path) -----------------------------------------------------------------

    def find(self, dst: bytes, dport: int, src: bytes, sport: int) -> TransportEndpoint | None:
        ep = self._connected.get((dst, dport, src, sport))
        if ep is not None:
            return ep
        rows = self._bound.get((dst, dport)) or self._wildcard.get((len(dst), dport))
        if rows:
            return rows[-1].endpoint
        return None

    def find_all(self, dst: bytes, dport: int) -> list[TransportEndpoint]:
        """Every unconnected endpoint for a port: multicast and broadcast delivery."""
        rows = self._bound.get((dst, dport), []) + self._wildcard.get((len(dst), dport), [])
        return [b.endpoint for b in rows]

    def bindings(self) -> list[Binding]:
        """Every port claim (bound, listening or connected-by-bind endpoints)."""
        return [b for rows in self._ports.values() for b in rows]

    # --- registration ------------------------------------------------------------------------

    def conflicts(self, size: int, local_addr: bytes, port: int, reuse: bool,
                  reuse_port: bool = False) -> bool:
        """Would a claim clash with one already made? As Linux's inet_bind_conflict /
        udp_lib_lport_inuse: overlapping addresses share a port only when both claims have
        SO_REUSEADDR, or both have SO_REUSEPORT (one owner here: ustack's process)."""
        for other in self._ports.get((size, port), ()):
            overlap = other.wildcard or _is_any(local_addr) or other.local_addr == local_addr
            if overlap and not ((reuse and other.reuse) or (reuse_port and other.reuse_port)):
                return True
        return False

    def bind(self, endpoint: TransportEndpoint, size: int, local_addr: bytes, port: int,
             reuse: bool = False, reuse_port: bool = False) -> Binding:
        """Claim ``port`` (0: pick an ephemeral one); raises EADDRINUSE on a clash."""
        if port == 0:
            port = self.pick_ephemeral(size, local_addr)
        elif self.conflicts(size, local_addr, port, reuse, reuse_port):
            raise OSError(errno.EADDRINUSE, "Address already in use")
        binding = Binding(endpoint, local_addr or bytes(size), port, size, reuse, reuse_port)
        self._ports.setdefault((size, port), []).append(binding)
        if binding.wildcard:
            binding.wildcard_key = (size, port)
            self._wildcard.setdefault(binding.wildcard_key, []).append(binding)
        else:
            binding.bound_key = (binding.local_addr, port)
            self._bound.setdefault(binding.bound_key, []).append(binding)
        return binding

    def pick_ephemeral(self, size: int, local_addr: bytes,
                       remote: tuple[bytes, int] | None = None) -> int:
        """RFC 6056 section 3.3.1 (random start, then sequential search)."""
        span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
        start = self._rng.randrange(span)
        for i in range(span):
            port = EPHEMERAL_LOW + (start + i) % span
            if not self.conflicts(size, local_addr, port, False):
                return port
        raise OSError(errno.EADDRNOTAVAIL, "no free ephemeral port")

    def connect(self, binding: Binding, local_addr: bytes, remote_addr: bytes,
                remote_port: int) -> None:
        """Move a binding into the 4-tuple table (it keeps its port claim)."""
        key = (local_addr, binding.local_port, remote_addr, remote_port)
        if key in self._connected and self._connected[key] is not binding.endpoint:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        self._unlist(binding)
        binding.local_addr = local_addr
        binding.remote = (remote_addr, remote_port)
        self._connected[key] = binding.endpoint
        binding.connected_key = key

    def add_connected(self, endpoint: TransportEndpoint, local_addr: bytes, local_port: int,
                      remote_addr: bytes, remote_port: int) -> Binding:
        """Register an endpoint created by the stack (an accepted connection) on its 4-tuple."""
        key = (local_addr, local_port, remote_addr, remote_port)
        if key in self._connected:
            raise OSError(errno.EADDRINUSE, "4-tuple in use")
        binding = Binding(endpoint, local_addr, local_port, len(local_addr), reuse=True,
                          remote=(remote_addr, remote_port), connected_key=key)
        self._connected[key] = endpoint
        return binding

    def _unlist(self, binding: Binding) -> None:
        if binding.connected_key is not None:
            if self._connected.get(binding.connected_key) is binding.endpoint:
                del self._connected[binding.connected_key]
            binding.connected_key = None
        if binding.bound_key is not None:
            _remove_row(self._bound, binding.bound_key, binding)
            binding.bound_key = None
        if binding.wildcard_key is not None:
            _remove_row(self._wildcard, binding.wildcard_key, binding)
            binding.wildcard_key = None

    def unbind(self, binding: Binding) -> None:
        self._unlist(binding)
        claims = self._ports.get((binding.size, binding.local_port), [])
        if binding in claims:
            claims.remove(binding)
            if not claims:
                del self._ports[(binding.size, binding.local_port)]
