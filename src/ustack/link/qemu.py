# SPDX-License-Identifier: MIT
"""A link endpoint over qemu's ``-netdev stream`` socket: Ethernet frames on a UNIX stream.

Framing (qemu net/stream.c and net/net.c ``net_fill_rstate``; passt's tap.c
speaks the same): every frame is preceded by its length as a 32-bit big-endian
integer, and nothing else — no FCS, no vnet header, so no offloads. qemu drops
the connection on a frame larger than its buffer (``NET_BUFSIZE``, 4096 + 65536
bytes); passt also on one shorter than an Ethernet header. We do both, and count
it: the stream cannot be resynchronised after a bad length.

- Reads are batched: ``recv_into`` a large buffer, then as many frames as it
  holds are split off; a partial frame stays at the front for the next read.
- Writes are gathered: outbound frames go into a queue of buffers (length
  prefix, headers, payload: the payload is not copied) that one ``sendmsg``
  drains, up to ``IOV_MAX`` buffers at a time, once per loop iteration (the
  stack writes packet by packet; what it writes in one iteration goes out
  together). The queue is bounded in bytes; a frame that does not fit is
  dropped whole (never a partial frame, which would corrupt the stream) and
  counted, so a guest that stops reading cannot make ustack buffer without
  limit.

The endpoint is the one LinkEndpoint the stack sees; the connection under it can
change (:meth:`QemuStreamEndpoint.connect_socket`, :meth:`~QemuStreamEndpoint.disconnect`):
:class:`QemuStreamServer` (``ustack passt --socket PATH``) hands it each guest
in turn, and :meth:`QemuStreamEndpoint.connect` plays the VM's side for tests.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
import struct
from collections import deque
from collections.abc import Callable, Sequence

from ustack.buffer import PacketBuffer, finish_partial_checksum
from ustack.contracts import LinkCapabilities, NetworkDispatcher
from ustack.link.base import EthernetLink
from ustack.link.ethernet import HEADER_LEN, deliver_frame, push_header
from ustack.link.tap import random_mac
from ustack.stats import Stats
from ustack.wire.errors import DropReason

#: qemu include/net/net.h: the largest frame qemu accepts on a stream (NET_BUFSIZE)
MAX_FRAME = 4096 + 65536
MIN_FRAME = HEADER_LEN
DEFAULT_MTU = 65520
_LEN = struct.Struct("!I")
_RX_BUFFER = 1 << 19  # room for many frames per read, and always for one whole frame
IOV_MAX = 1024  # sysconf(_SC_IOV_MAX) on Linux (UIO_MAXIOV)
DEFAULT_QUEUE_LIMIT = 4 << 20  # bytes waiting for the peer before frames are dropped
DEFAULT_READS = 16  # reads per readiness callback, so one busy peer cannot hog the loop


class QemuSocketError(OSError):
    """The stream socket could not be set up; the message says what to do."""


class QemuStreamEndpoint(EthernetLink):
    """Ethernet over a (changeable) connected UNIX stream socket with qemu's framing."""

    def __init__(self, sock: socket.socket | None = None, *, mtu: int = DEFAULT_MTU,
                 mac: bytes | None = None, queue_limit: int = DEFAULT_QUEUE_LIMIT,
                 reads: int = DEFAULT_READS, name: str = "") -> None:
        if not 68 <= mtu <= MAX_FRAME - HEADER_LEN:
            raise ValueError(f"MTU {mtu} outside 68..{MAX_FRAME - HEADER_LEN}")
        if mac is not None and (len(mac) != 6 or mac[0] & 1):
            raise ValueError("the link address must be a 6-byte unicast MAC")
        self.name = name
        self._mtu = mtu
        self._mac = mac if mac is not None else random_mac()
        self._caps = LinkCapabilities.RESOLUTION_REQUIRED  # plain frames: no offloads
        self.queue_limit = queue_limit
        self.reads = max(1, reads)
        self.stats = Stats()
        self._dispatcher: NetworkDispatcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._closed = False
        self._rxbuf = bytearray(_RX_BUFFER)
        self._rxview = memoryview(self._rxbuf)
        self._rx_start = 0
        self._rx_end = 0
        self._txq: deque[memoryview] = deque()
        self._txq_bytes = 0
        self._writing = False
        self._flush_scheduled = False
        #: called with a reason when a connection ends (the server uses it to accept again)
        self.on_disconnect: Callable[[str], None] | None = None
        if sock is not None:
            self.connect_socket(sock)

    @classmethod
    def connect(cls, path: str, *, mtu: int = DEFAULT_MTU, mac: bytes | None = None,
                queue_limit: int = DEFAULT_QUEUE_LIMIT, reads: int = DEFAULT_READS,
                name: str = "") -> QemuStreamEndpoint:
        """The VM's side: connect to a listening ``ustack passt --socket PATH``."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise QemuSocketError(exc.errno or errno.EIO, f"cannot connect to {path}: "
                                  f"{exc.strerror}: is ustack passt listening there?") from None
        return cls(sock, mtu=mtu, mac=mac, queue_limit=queue_limit, reads=reads, name=name)

    # --- LinkEndpoint -------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self.disconnect("closed", notify=False)
        self.stop()
        self._closed = True
        self._dispatcher = None

    # --- the connection -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect_socket(self, sock: socket.socket) -> None:
        """Carry frames over ``sock`` (a connected stream socket) from now on."""
        if self._closed:
            sock.close()
            raise OSError(errno.EBADF, "the endpoint is closed")
        if self._sock is not None:
            raise OSError(errno.EISCONN, "the endpoint already has a connection")
        sock.setblocking(False)
        self._sock = sock
        self._rx_start = self._rx_end = 0
        self.stats.count("qemu.connects")
        if self._loop is not None:
            self._loop.add_reader(sock.fileno(), self._readable)

    def disconnect(self, reason: str = "disconnected", *, notify: bool = True) -> None:
        """Drop the current connection (queued frames are discarded and counted)."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(sock.fileno())
            if self._writing:
                self._loop.remove_writer(sock.fileno())
        self._writing = False
        sock.close()
        if self._txq:
            self.stats.count("qemu.tx_discarded_bytes", self._txq_bytes)
        self._txq.clear()
        self._txq_bytes = 0
        self._rx_start = self._rx_end = 0
        self.stats.count("qemu.disconnects")
        if notify and self.on_disconnect is not None:
            self.on_disconnect(reason)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve the connection (and later ones) on ``loop``, the stack's loop."""
        if self._closed:
            raise OSError(errno.EBADF, "the endpoint is closed")
        self.stop()
        self._loop = loop
        if self._sock is not None:
            loop.add_reader(self._sock.fileno(), self._readable)
            if self._txq:
                self._want_writable()

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and self._sock is not None:
            loop.remove_reader(self._sock.fileno())
            if self._writing:
                loop.remove_writer(self._sock.fileno())
        self._writing = False

    # --- receive ------------------------------------------------------------------------------

    def _readable(self) -> None:
        sock = self._sock
        counters = self.stats.counters
        for _ in range(self.reads):
            if sock is not self._sock or sock is None:
                return
            free = _RX_BUFFER - self._rx_end
            try:
                n = sock.recv_into(self._rxview[self._rx_end:])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                counters[f"qemu.rx_error.{errno.errorcode.get(exc.errno or 0, 'unknown')}"] += 1
                self.disconnect(f"receive failed: {exc.strerror}")
                return
            if n == 0:
                self.disconnect("the peer closed the connection")
                return
            counters["qemu.rx_reads"] += 1
            self._rx_end += n
            if not self._split(sock):
                return
            if n < free:  # the socket is (very likely) drained: skip a read that would fail
                return

    def _split(self, sock: socket.socket) -> bool:
        """Deliver every whole frame in the buffer; False if the connection was dropped."""
        buf, view = self._rxbuf, self._rxview
        pos, end = self._rx_start, self._rx_end
        counters = self.stats.counters
        mac, stats = self._mac, self.stats
        while end - pos >= _LEN.size:
            length = _LEN.unpack_from(buf, pos)[0]
            if not MIN_FRAME <= length <= MAX_FRAME:
                # qemu's net_fill_rstate gives up on the connection too: no way to resync
                stats.drop("qemu.rx", DropReason.BAD_LENGTH)
                counters["qemu.rx_bad_length"] += 1
                self.disconnect(f"bad frame length {length}")
                return False
            if end - pos - _LEN.size < length:
                break
            start = pos + _LEN.size
            pos = start + length
            counters["qemu.rx_frames"] += 1
            counters["qemu.rx_bytes"] += length
            deliver_frame(bytes(view[start:pos]), mac, self._dispatcher, stats,
                          promiscuous=True)
            if sock is not self._sock:  # delivering made the stack drop the connection
                return False
        if pos == end:
            self._rx_start = self._rx_end = 0
        elif _RX_BUFFER - end < MAX_FRAME + _LEN.size:  # make room for a whole frame
            buf[:end - pos] = view[pos:end]
            self._rx_start, self._rx_end = 0, end - pos
        else:
            self._rx_start = pos
        return True

    # --- send ---------------------------------------------------------------------------------

    def write_packets(self, pkts: Sequence[PacketBuffer]) -> int:
        if self._sock is None:
            for _ in pkts:
                self.stats.drop("qemu.tx", DropReason.LINK_DOWN)
            return 0
        counters = self.stats.counters
        queue = self._txq
        accepted = 0
        for pkt in pkts:
            if pkt.gso_size:  # never offered: no GSO capability
                self.stats.drop("qemu.tx", DropReason.BAD_SEGMENT)
                continue
            push_header(pkt, self._mac)
            if pkt.csum_partial is not None:  # never offered either; finish it to be safe
                parts: tuple[memoryview, ...] = (memoryview(finish_partial_checksum(pkt)),)
            else:
                parts = pkt.views()
            length = sum(len(part) for part in parts)
            if length > MAX_FRAME:
                self.stats.drop("qemu.tx", DropReason.TOO_BIG)
                continue
            if self._txq_bytes + _LEN.size + length > self.queue_limit:
                self.stats.drop("qemu.tx", DropReason.QUEUE_FULL)
                counters["qemu.tx_queue_full"] += 1
                continue
            queue.append(memoryview(_LEN.pack(length)))
            queue.extend(part for part in parts if len(part))
            self._txq_bytes += _LEN.size + length
            accepted += 1
            counters["qemu.tx_frames"] += 1
            counters["qemu.tx_bytes"] += length
        if self._writing or self._flush_scheduled or not accepted:
            return accepted  # the loop flushes when the socket is writable / this tick ends
        if self._loop is None:
            self._flush()
        else:
            # the stack writes one packet at a time: flush once, after this loop
            # iteration, so everything it sent meanwhile goes out in one sendmsg
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)
        return accepted

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        if not self._writing:
            self._flush()

    def _flush(self) -> None:
        """sendmsg the queue, IOV_MAX buffers at a time, until empty or EAGAIN."""
        sock = self._sock
        queue = self._txq
        counters = self.stats.counters
        while queue and sock is not None:
            batch = [queue[i] for i in range(min(len(queue), IOV_MAX))]
            try:
                sent = sock.sendmsg(batch, [], socket.MSG_NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                self._want_writable()
                return
            except OSError as exc:
                counters[f"qemu.tx_error.{errno.errorcode.get(exc.errno or 0, 'unknown')}"] += 1
                self.disconnect(f"send failed: {exc.strerror}")
                return
            counters["qemu.tx_sendmsg"] += 1
            self._txq_bytes -= sent
            while sent:
                head = queue[0]
                if len(head) <= sent:
                    sent -= len(head)
                    queue.popleft()
                else:
                    queue[0] = head[sent:]
                    sent = 0
        if self._writing and self._loop is not None and sock is not None:
            self._loop.remove_writer(sock.fileno())
        self._writing = False

    def _want_writable(self) -> None:
        if self._writing or self._loop is None or self._sock is None:
            return
        self._writing = True
        self.stats.count("qemu.tx_blocked")
        self._loop.add_writer(self._sock.fileno(), self._flush)


def _claim_path(path: str) -> None:
    """Refuse a path that a live server listens on; remove a stale socket file.

    Like passt, probe by connecting: a refused connection means nobody listens.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise QemuSocketError(errno.EEXIST, f"{path} exists and is not a socket: remove it "
                              "or choose another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # stale: left by a server that is gone
        return
    except FileNotFoundError:
        return
    except BlockingIOError:  # the listener's backlog is full: very much in use
        pass
    except OSError as exc:
        raise QemuSocketError(exc.errno or errno.EIO, f"cannot check {path}: {exc.strerror}"
                              ) from None
    finally:
        probe.close()
    raise QemuSocketError(errno.EADDRINUSE, f"{path} is in use by another process (another "
                          "ustack or passt?): stop it or choose another socket path")


class QemuStreamServer:
    """``ustack passt --socket PATH``: one guest at a time on a listening UNIX socket.

    The stack sees only :attr:`endpoint`; each accepted guest becomes its
    connection. While one is connected, further connections are accepted and
    closed at once (counted as ``qemu.server.refused``); once it goes away the
    next one is served.
    """

    def __init__(self, path: str, endpoint: QemuStreamEndpoint | None = None, *,
                 mtu: int = DEFAULT_MTU, mac: bytes | None = None) -> None:
        self.path = path
        self.endpoint = endpoint if endpoint is not None else QemuStreamEndpoint(mtu=mtu,
                                                                               mac=mac)
        self.stats = self.endpoint.stats
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inode: tuple[int, int] | None = None
        #: called on each new guest connection and each loss (with the reason)
        self.on_connect: Callable[[], None] | None = None
        self.on_disconnect: Callable[[str], None] | None = None
        self.endpoint.on_disconnect = self._lost
        self._listener = self._listen(path)

    def _listen(self, path: str) -> socket.socket:
        _claim_path(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise QemuSocketError(errno.EADDRINUSE, f"{path} appeared meanwhile: another "
                                      "server started; choose another socket path") from None
            raise QemuSocketError(exc.errno or errno.EIO, f"cannot listen on {path}: "
                                  f"{exc.strerror or exc}") from None
        try:
            st = os.stat(path)
            self._inode = (st.st_dev, st.st_ino)
            sock.listen(4)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            self._unlink()
            raise
        return sock

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Accept guests on ``loop`` (the stack's loop) and serve the endpoint there."""
        self._loop = loop
        self.endpoint.start(loop)
        loop.add_reader(self._listener.fileno(), self._accept)

    def _accept(self) -> None:
        while True:
            try:
                conn, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: count, pause, try again
                name = errno.errorcode.get(exc.errno or 0, "unknown")
                self.stats.count(f"qemu.server.accept_error.{name}")
                self._pause_accepting()
                return
            if self.endpoint.connected:
                self.stats.count("qemu.server.refused")
                conn.close()
                continue
            self.stats.count("qemu.server.accepted")
            self.endpoint.connect_socket(conn)
            if self.on_connect is not None:
                self.on_connect()

    def _pause_accepting(self, delay: float = 0.1) -> None:
        """Out of fds: the listener stays readable, so stop watching it for a moment."""
        loop = self._loop
        if loop is None:
            return
        loop.remove_reader(self._listener.fileno())

        def resume() -> None:
            if self._loop is loop and self._listener.fileno() >= 0:
                loop.add_reader(self._listener.fileno(), self._accept)

        loop.call_later(delay, resume)

    def _lost(self, reason: str) -> None:
        if self.on_disconnect is not None:
            self.on_disconnect(reason)

    def _unlink(self) -> None:
        """Remove the socket file, if it is still the one we made."""
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        """Stop listening, drop the guest, remove the socket file (the endpoint stays open)."""
        if self._listener.fileno() < 0:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._listener.fileno())
            self._loop = None
        self._listener.close()
        self._unlink()
        self.endpoint.disconnect("the server closed", notify=False)

    def __enter__(self) -> QemuStreamServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
