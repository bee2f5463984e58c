# SPDX-License-Identifier: MIT
"""Splice a ustack TCP endpoint (the guest's side) to a host kernel socket, both ways.

Backpressure, never unbounded buffering: the guest's data is read from ustack only
as fast as the host socket takes it (so the guest's window closes when the host
cannot keep up), and the host socket is read only while ustack's send buffer has
room (so the host peer's window closes when the guest is slow). FIN maps to
shutdown(SHUT_WR) and back; RST to an abortive close (SO_LINGER 0) and back.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import time
from collections.abc import Callable

from ustack.transport.tcp.endpoint import TCPEndpoint
from ustack.transport.tcp.state import SENDING, State
from ustack.waiter import ERROR, HANGUP, READABLE, WRITABLE

CHUNK = 256 * 1024
_LINGER_ABORT = struct.pack("ii", 1, 0)
_CLOSED = State.CLOSED  # (read on every guest event: an enum member lookup costs ~70 ns)


class Splice:
    def __init__(self, ep: TCPEndpoint, sock: socket.socket, loop: asyncio.AbstractEventLoop,
                 on_close: Callable[[Splice], object]) -> None:
        self.ep = ep
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = loop
        self._on_close = on_close
        self.last_active = time.monotonic()
        self.bytes_to_host = 0
        self.bytes_to_guest = 0
        self._to_host = memoryview(b"")  # read from the guest, not yet taken by the host
        self._reading_host = False
        self._writing_host = False
        self._guest_eof = False
        self._host_eof = False
        self.closed = False
        sock.setblocking(False)
        self._waiter = ep.waiters.add(READABLE | WRITABLE | ERROR | HANGUP, self._guest_event,
                                      persistent=True)
        self._read_host(True)
        loop.call_soon(self._guest_event, READABLE | WRITABLE)

    # --- guest -> host ---------------------------------------------------------------------

    def _guest_event(self, events: int) -> None:
        if self.closed:
            return
        if events & (READABLE | ERROR | HANGUP):
            self._pump_to_host()
        if not self.closed and events & (WRITABLE | ERROR | HANGUP):
            self._read_host(self.ep.sender.free_space() > 0)
        if not self.closed and self.ep.state is _CLOSED:
            self._guest_gone()

    def _pump_to_host(self) -> None:
        while not self.closed:
            if self._to_host:
                try:
                    sent = self.sock.send(self._to_host)
                except BlockingIOError:
                    self._write_host(True)
                    return
                except OSError:
                    self.abort()
                    return
                self.bytes_to_host += sent
                self._to_host = self._to_host[sent:]
                self.last_active = time.monotonic()
                if self._to_host:
                    self._write_host(True)
                    return
            self._write_host(False)
            if self._guest_eof:
                return
            try:
                data = self.ep.read_ready(CHUNK)
            except OSError:  # the guest reset the connection
                self.abort()
                return
            if data is None:  # nothing more from the guest for now
                return
            if not data:
                self._guest_eof = True
                self._shutdown_host()
                return
            self._to_host = memoryview(data)

    def _write_host(self, want: bool) -> None:
        if want != self._writing_host:
            self._writing_host = want
            if want:
                self.loop.add_writer(self.fd, self._pump_to_host)
            else:
                self.loop.remove_writer(self.fd)

    def _shutdown_host(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._maybe_done()

    # --- host -> guest ---------------------------------------------------------------------

    def _read_host(self, want: bool) -> None:
        want = want and not self._host_eof
        if want != self._reading_host:
            self._reading_host = want
            if want:
                self.loop.add_reader(self.fd, self._pump_to_guest)
            else:
                self.loop.remove_reader(self.fd)

    def _pump_to_guest(self) -> None:
        ep = self.ep
        while not self.closed:
            room = ep.sender.free_space()
            if room <= 0 or ep.state not in SENDING:
                self._read_host(False)
                return
            want = min(room, CHUNK)
            try:
                data = self.sock.recv(want)
            except BlockingIOError:
                return
            except OSError as exc:
                self.abort(exc.errno == errno.ECONNRESET)
                return
            if not data:
                self._host_eof = True
                self._read_host(False)
                ep.shutdown(socket.SHUT_WR)
                self._maybe_done()
                return
            ep.send(data)
            self.bytes_to_guest += len(data)
            self.last_active = time.monotonic()
            if len(data) < want:
                # the socket is drained for now: the (level-triggered) reader calls us
                # again when more arrives, so no recv that would only fail with EAGAIN
                return

    # --- ending ------------------------------------------------------------------------------

    def _maybe_done(self) -> None:
        if self._guest_eof and self._host_eof and not self._to_host:
            self.close()

    def _guest_gone(self) -> None:
        """The ustack side reached CLOSED: by RST, timeout, or a completed close."""
        if self.ep.take_error():
            self.abort()
        else:
            self._guest_eof = True
            self._maybe_done()
            if not self.closed and self._host_eof:
                self.close()

    def abort(self, host_reset: bool = False) -> None:
        """RST both ways: abortive close of the host socket, RST to the guest."""
        if self.closed:
            return
        if not host_reset:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
            except OSError:
                pass
        if self.ep.state is not State.CLOSED:
            self.ep.abort()
        self._finish()

    def close(self) -> None:
        if self.closed:
            return
        if self.ep.state is not State.CLOSED:
            self.ep.close()
        self._finish()

    def _finish(self) -> None:
        self.closed = True
        self._read_host(False)
        self._write_host(False)
        self.ep.waiters.remove(self._waiter)
        self.sock.close()
        self._on_close(self)
