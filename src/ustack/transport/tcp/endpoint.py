# SPDX-License-Identifier: MIT
"""A TCP connection endpoint: its state, the user calls of RFC 9293 3.10 (OPEN, SEND,
RECEIVE, CLOSE, ABORT, STATUS), timers, and teardown.

Segment arrival lives in :mod:`input`, segment emission in :mod:`output`, the
send and receive sides in :mod:`sender` and :mod:`receiver`.
"""

from __future__ import annotations

import errno
import os
from functools import partial
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.contracts import ControlKind, ControlMessage
from ustack.demux import Binding
from ustack.route import Route
from ustack.transport.tcp import input as tcp_input
from ustack.transport.tcp import output as tcp_output
from ustack.transport.tcp import stacks, timeouts
from ustack.transport.tcp.config import TCPConfig
from ustack.transport.tcp.ecn import EcnState
from ustack.transport.tcp.receiver import Receiver
from ustack.transport.tcp.sender import Sender
from ustack.transport.tcp.seqnum import unwrap
from ustack.transport.tcp.state import RECEIVING, SENDING, State
from ustack.transport.tcp.timers import TimerSlot
from ustack.waiter import ERROR, HANGUP, READABLE, WRITABLE, WaiterQueue
from ustack.wire import tcp as wire
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.transport.tcp.listener import Listener
    from ustack.transport.tcp.protocol import TCPProtocol

IPV4_HEADER = 20
IPV6_HEADER = 40
#: states in which segments carrying data (new, resent, or our FIN) may go out: the
#: synchronized states before our FIN is acknowledged (RFC 9293 3.10.2, 3.10.4)
DATA_STATES = frozenset({State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1,
                         State.CLOSING, State.LAST_ACK})
# (read on every empty read: an enum member lookup costs ~70 ns on 3.11)
_CLOSED = State.CLOSED
_LISTEN = State.LISTEN


def _wscale_for(buffer_max: int) -> int:
    """The smallest shift that lets the window cover the largest receive buffer (<= 14)."""
    shift = 0
    while (0xFFFF << shift) < buffer_max and shift < 14:
        shift += 1
    return shift


class TCPEndpoint:
    def __init__(self, protocol: TCPProtocol, size: int) -> None:
        self.protocol = protocol
        self.stack = protocol.stack
        self.clock = self.stack.clock
        self.config: TCPConfig = protocol.config
        cfg = self.config
        self.size = size
        self.state = State.CLOSED
        self.table = self.stack.demux[IPProto.TCP]
        self.binding: Binding | None = None
        self.local_addr = bytes(size)
        self.local_port = 0
        self.remote_addr = bytes(size)
        self.remote_port = 0
        self.route: Route | None = None
        self.receiver = Receiver(cfg.rcvbuf, cfg.default_mss, cfg.rcvbuf_max)
        self.receiver.wscale = _wscale_for(cfg.rcvbuf_max) if cfg.window_scaling else 0
        self.receiver.policy = cfg.window_policy
        self.sender = Sender(self, cfg.default_mss, cfg.sndbuf, cfg.congestion_control)
        # negotiated at the handshake
        self.ts_enabled = False
        self.sack_enabled = False
        self.ts_recent = 0
        self.ts_recent_time = 0.0
        self.ts_offset = 0  # RFC 7323 5.4: set per connection in _start_connection
        self.peer_mss = cfg.default_mss
        self.peer_syn_options: wire.TCPOptions | None = None
        self.syn_text: tcp_input.Segment | None = None  # text a SYN brought in SYN-SENT
        self.ecn = EcnState()  # RFC 3168 (ecn.py)
        self.maxseg = 0  # TCP_MAXSEG: 0 means not set
        self.rcv_mss = cfg.default_mss
        # ACK state (output.py)
        self.ack_pending = False
        self.ack_now = False
        self.rcv_unacked = 0
        self.last_ack_sent = 0
        self.dsack_pending: tuple[int, int] | None = None
        self.last_oow_ack = -1e18  # when we last answered an out-of-window pure ACK
        self.ack_war_end = -1e18  # FreeBSD's per-connection challenge-ACK epoch
        self.ack_war_sent = 0
        self.quickack = cfg.quickack_segments
        self.delayed_ack = cfg.delayed_ack
        # socket options
        self.reuse = False
        self.keepalive = False
        self.keepidle = cfg.keepalive_idle
        self.keepintvl = cfg.keepalive_interval
        self.keepcnt = cfg.keepalive_count
        self.linger: int | None = None
        self.user_timeout = 0.0
        self.min_rto = cfg.min_rto
        self.ttl = 0
        self.tos = 0
        self.noopt = False  # FreeBSD's TCP_NOOPT: a SYN or SYN-ACK with no options at all
        # lifecycle
        self.error = 0
        self.soft_error = 0
        self.waiters = WaiterQueue()
        self.user_closed = False
        self.read_shut = False
        self.write_shut = False
        self.listener: Listener | None = None
        self.parent: Listener | None = None  # set while waiting in an accept queue
        self.passive = False
        self.was_connected = False  # reached SYN-SENT or SYN-RECEIVED at some point
        self.syn_retries = 0
        self.keepalive_probes = 0
        self.persist_probes = 0
        self.persist_since: float | None = None  # first zero-window probe (timeouts.py)
        self.last_recv = 0.0
        self.neighbor_confirm_at = 0.0  # next RFC 4861 7.3.1 confirmation (reachability.py)
        self.progress_time = 0.0
        self.established_at = 0.0
        self.rto_timer = TimerSlot(self.clock, partial(timeouts.on_rto_timer, self))
        self.delack_timer = TimerSlot(self.clock, self.on_delack_timer)
        self.keepalive_timer = TimerSlot(self.clock, partial(timeouts.on_keepalive_timer, self))
        self.persist_timer = TimerSlot(self.clock, partial(timeouts.on_persist_timer, self))
        self.wait_timer = TimerSlot(self.clock, partial(timeouts.on_wait_timer, self))

    def __repr__(self) -> str:
        return f"<TCPEndpoint {self.state.label} :{self.local_port} -> :{self.remote_port}>"

    # --- sizes ---------------------------------------------------------------------------------

    def network_header_length(self) -> int:
        return IPV4_HEADER if self.size == 4 else IPV6_HEADER

    def advertised_mss(self) -> int:
        """RFC 9293 3.7.1: the MTU of the route minus fixed IP and TCP headers."""
        route = self.route
        mtu = route.nic.link.mtu if route is not None else 1500
        # (read per received data segment: the header length inline, no min/max calls)
        mss = mtu - (IPV4_HEADER if self.size == 4 else IPV6_HEADER) - wire.MIN_HEADER_LEN
        if self.maxseg and self.maxseg < mss:
            mss = self.maxseg
        return 64 if mss < 64 else 0xFFFF if mss > 0xFFFF else mss

    def update_send_mss(self) -> None:
        """Payload per segment: peer's MSS and our path MTU, less the options we always send."""
        path = self.advertised_mss()
        if self.route is not None:
            pmtu = self.route.net_ep.path_mtu(self.remote_addr)  # type: ignore[attr-defined]
            path = min(path, pmtu - self.network_header_length() - wire.MIN_HEADER_LEN)
        mss = min(self.peer_mss, path) - self.standard_option_length
        self.sender.set_mss(mss)
        self.rcv_mss = min(self.rcv_mss, self.advertised_mss())
        self.receiver.mss = self.rcv_mss

    # --- segments in and out (input.py, output.py) ----------------------------------------

    def handle_packet(self, pkt: PacketBuffer) -> None:
        tcp_input.handle_packet(self, pkt)

    def synchronized_input(self, seg: tcp_input.Segment) -> None:
        tcp_input.synchronized(self, seg)
        tcp_output.flush_ack(self)

    # Segment emission and the ACK policy live in output.py. Its functions take the
    # endpoint first, so they serve as methods as they are: ``ep.emit(...)`` calls
    # ``tcp_output.emit(ep, ...)`` with no forwarding layer on the per-segment path.
    emit = tcp_output.emit
    emit_data = tcp_output.emit_data
    data_options = tcp_output.data_options
    ts_now = tcp_output.ts_now
    send_ack = tcp_output.send_ack
    send_syn = tcp_output.send_syn
    send_synack = tcp_output.send_synack
    send_rst = tcp_output.send_rst
    send_challenge_ack = tcp_output.send_challenge_ack
    schedule_ack = tcp_output.schedule_ack
    flush_ack = tcp_output.flush_ack
    on_delack_timer = tcp_output.on_delack_timer

    @property
    def standard_option_length(self) -> int:
        return tcp_output.standard_option_length(self)

    def oow_ack_limited(self) -> bool:
        """True when an out-of-window ACK was answered too recently to answer another."""
        now = self.clock.now()
        if now - self.last_oow_ack < self.config.invalid_ratelimit:
            self.stack.stats.count("tcp.oow_acks_suppressed")
            return True
        self.last_oow_ack = now
        return False

    def ack_war_allows(self) -> bool:
        """FreeBSD's tcp_send_challenge_ack(): at most ``ack_war_count`` challenge ACKs
        per ``ack_war_window`` on this connection (the settings read as they are now)."""
        cfg = self.config
        if cfg.ack_war_window <= 0 or cfg.ack_war_count <= 0:
            return True
        now = self.clock.now()
        if self.ack_war_end < now:
            self.ack_war_sent = 0
            self.ack_war_end = now + cfg.ack_war_window
        if self.ack_war_sent >= cfg.ack_war_count:
            return False
        self.ack_war_sent += 1
        return True

    @staticmethod
    def table_ports(pkt: PacketBuffer) -> tuple[int, int]:
        """(source port, destination port) of a packet the protocol parsed."""
        hdr: wire.TCPHeader = pkt.transport_header  # type: ignore[assignment]
        return hdr.src_port, hdr.dst_port

    # --- binding ---------------------------------------------------------------------------

    def bind(self, addr: bytes, port: int) -> None:
        if self.binding is not None or self.state is not State.CLOSED:
            raise OSError(errno.EINVAL, "Invalid argument")
        if any(addr) and not self.stack.is_local_address(addr):
            nic = next(iter(self.stack.nics.values()), None)
            if nic is None or not nic.spoofing:
                raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        self.binding = self.table.bind(self, self.size, addr, port, self.reuse)
        self.local_addr = self.binding.local_addr
        self.local_port = self.binding.local_port

    def listen(self, backlog: int) -> None:
        from ustack.transport.tcp.listener import Listener

        if self.state is State.LISTEN and self.listener is not None:
            self.listener.backlog = max(backlog, 0)
            return
        if self.state is not State.CLOSED:
            raise OSError(errno.EINVAL, "Invalid argument")
        if self.binding is None:
            self.bind(bytes(self.size), 0)
        self.listener = Listener(self, max(backlog, 0))
        self.state = State.LISTEN

    # --- OPEN ------------------------------------------------------------------------------

    def connect(self, addr: bytes, port: int) -> None:
        """Active OPEN (RFC 9293 3.10.1): choose the route and ISN, send SYN."""
        if self.state is State.SYN_SENT:
            raise BlockingIOError(errno.EALREADY, "Operation already in progress")
        if self.state is not State.CLOSED:
            raise OSError(errno.EISCONN, "Transport endpoint is already connected")
        if port == 0 or not any(addr):
            raise OSError(errno.ECONNREFUSED, "Connection refused")
        local = self.local_addr if any(self.local_addr) else None
        route = self.stack.find_route(addr, local)
        if self.binding is None:
            self.binding = self.table.bind(self, self.size, bytes(self.size), 0, self.reuse)
            self.local_port = self.binding.local_port
        self.table.connect(self.binding, route.local_addr, addr, port)
        self._send_first_syn(route, route.local_addr, addr, port)

    def connect_from(self, local: bytes, lport: int, addr: bytes, port: int) -> None:
        """Active OPEN from a chosen address and port, registered on the exact 4-tuple
        without claiming the port: the forwarder opening into its guest on behalf of a
        host client, from that client's address (the NIC must allow spoofing)."""
        if self.state is not State.CLOSED or self.binding is not None:
            raise OSError(errno.EISCONN, "Transport endpoint is already connected")
        route = self.stack.find_route(addr, local)
        self.binding = self.table.add_connected(self, local, lport, addr, port)
        self.local_port = lport
        self._send_first_syn(route, local, addr, port)

    def _send_first_syn(self, route: Route, local: bytes, addr: bytes, port: int) -> None:
        self.route = route
        self.local_addr = local
        self.remote_addr, self.remote_port = addr, port
        self._start_connection(self.protocol.isn(self.local_addr, self.local_port, addr, port))
        self.state = State.SYN_SENT
        self.stack.stats.count("tcp.active_opens")
        self.send_syn()
        self.rto_timer.set(self.rto_delay(self.config.initial_rto))

    def _start_connection(self, iss: int) -> None:
        self.sender.init(iss)
        self.ts_offset = self.protocol.ts_offset(self.local_addr, self.local_port,
                                                 self.remote_addr, self.remote_port)
        self.sender.gso = self._route_gso()
        self.error = 0
        self.was_connected = True
        self.progress_time = self.clock.now()
        self.protocol.connections.add(self)

    def _route_gso(self) -> bool:
        from ustack.contracts import LinkCapabilities

        if self.route is None or self.route.is_local:
            return False
        caps = self.route.nic.link.capabilities
        return bool(caps & LinkCapabilities.GSO and caps & LinkCapabilities.TX_CHECKSUM_OFFLOAD)

    def negotiate(self, peer: wire.TCPOptions) -> None:
        """Settle the options both SYNs offered (RFC 7323 1.3, 2.2; RFC 2018 2; RFC 9293 3.7.1)."""
        cfg = self.config
        self.peer_mss = peer.mss if peer.mss else cfg.default_mss
        if cfg.window_scaling and peer.wscale is not None:
            self.sender.wscale = min(peer.wscale, 14)  # RFC 7323 2.3: cap at 14
        else:
            self.sender.wscale = 0
            self.receiver.wscale = 0
        self.sack_enabled = cfg.sack and peer.sack_permitted
        self.ts_enabled = cfg.timestamps and peer.timestamp is not None
        if self.noopt:  # we offered no options, so none is in use (FreeBSD TF_NOOPT)
            self.sender.wscale = self.receiver.wscale = 0
            self.sack_enabled = self.ts_enabled = False
        if self.ts_enabled and peer.timestamp is not None:
            self.ts_recent = peer.timestamp[0]
            self.ts_recent_time = self.clock.now()
        self.sender.use_sack(self.sack_enabled)
        self.update_send_mss()
        self.receiver.seg_mss = min(self.peer_mss, self.advertised_mss())
        if cfg.round_buffers_to_mss:
            self._round_buffers(min(self.peer_mss, self.advertised_mss()))

    def _round_buffers(self, mss: int) -> None:
        """FreeBSD's tcp_mss(): once the MSS is known, the socket buffers grow to whole
        multiples of it (within kern.ipc.maxsockbuf)."""
        r, s = self.receiver, self.sender
        if r.rcvbuf > mss:
            r.rcvbuf = max(r.rcvbuf, min(-(-r.rcvbuf // mss) * mss, r.rcvbuf_max))
        if s.sndbuf > mss:
            s.sndbuf = max(s.sndbuf, min(-(-s.sndbuf // mss) * mss, self.config.sndbuf_max))

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    def established(self) -> bool:
        """The handshake completed; False if a full accept queue keeps us half-open (the
        ACK is dropped, the SYN-ACK timer keeps running and its retries keep counting)."""
        if self.parent is not None and not self.parent.admits(self):
            return False
        self.state = State.ESTABLISHED
        self.established_at = self.clock.now()
        stacks.settle(self)  # the chosen or inherited TCP stack takes it, or falls back
        self.rto_timer.cancel()
        self.sender.backoffs = 0
        self.syn_retries = 0
        self.last_recv = self.clock.now()
        if self.keepalive:
            self.keepalive_timer.set(self.keepidle)
        self.stack.stats.count("tcp.established")
        if self.parent is not None:
            self.parent.child_established(self)
        self.waiters.notify(WRITABLE)
        return True

    # --- SEND / RECEIVE ----------------------------------------------------------------------

    def send(self, data: bytes | memoryview) -> int:
        """Queue data; raises BlockingIOError when the buffer is full, EPIPE after shutdown."""
        if self.error:
            raise self._take_error()
        if self.write_shut or self.state not in SENDING:
            if self.state in (State.SYN_SENT, State.SYN_RECEIVED):
                raise BlockingIOError(errno.EAGAIN, "connection not yet established")
            if self.state in (State.CLOSED, State.LISTEN) and not self.write_shut and \
                    not self.was_connected:
                raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
            # a connection that was reset or closed: EPIPE, as Linux (tcp_done shuts both)
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        taken = self.sender.write(data)
        if taken == 0:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        self.sender.output()
        self.flush_ack()
        return taken

    def recv(self, limit: int, peek: bool = False) -> bytes:
        """Read buffered data; b"" at end of stream; BlockingIOError when nothing yet."""
        r = self.receiver
        if r.buffered:
            data = r.read(limit, peek)
            if not peek:
                self._after_read()
            return data
        end = self._nothing_buffered()
        if end is None:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return end

    def read_ready(self, limit: int) -> bytes | None:
        """``recv`` for in-process readers that poll on every wakeup (the guest splice,
        asyncio streams): None instead of BlockingIOError when nothing is buffered yet,
        as raising and catching costs more than the rest of an empty read."""
        r = self.receiver
        if r.buffered:
            data = r.read(limit, False)
            self._after_read()
            return data
        return self._nothing_buffered()

    def _nothing_buffered(self) -> bytes | None:
        """An empty receive buffer: the pending error raised, b"" at end of stream,
        ENOTCONN if never connected, else None (would block)."""
        if self.error:
            raise self._take_error()
        if self.receiver.fin_received or self.read_shut:
            return b""
        state = self.state
        if state is _CLOSED:
            if self.was_connected:
                return b""
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        if state is _LISTEN:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return None

    def _after_read(self) -> None:
        """Send a window update when reading opened the window enough (RFC 9293 3.8.6.2.2)."""
        r = self.receiver
        if self.config.moderate_rcvbuf:
            r.autotune(self.clock.now(), self.sender.rtt.srtt)
        if self.state not in RECEIVING or self.route is None:
            return
        # how far the right edge would move: the window field caps it (0xFFFF << wscale),
        # and an update that cannot move it is not worth a segment
        free = min(r.rcvbuf - r.buffered, 0xFFFF << r.wscale)
        if r.rcv_nxt + free - r.rcv_adv >= min(r.rcvbuf // 2, 2 * self.rcv_mss):
            self.send_ack()

    # --- CLOSE / ABORT -------------------------------------------------------------------------

    def shutdown(self, how: int) -> None:
        if self.state is State.CLOSED and not self.was_connected:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        if how in (0, 2):
            self.read_shut = True
            self.waiters.notify(READABLE)
        if how in (1, 2) and not self.write_shut:
            self.write_shut = True
            self._queue_fin()

    def _queue_fin(self) -> None:
        """CLOSE (RFC 9293 3.10.4): send FIN after the queued data."""
        if self.state in (State.ESTABLISHED, State.SYN_RECEIVED):
            self.state = State.FIN_WAIT_1
        elif self.state is State.CLOSE_WAIT:
            self.state = State.LAST_ACK
        elif self.state is State.SYN_SENT:
            self.terminate(0)
            return
        else:
            return
        self.sender.fin_queued = True
        self.sender.output()

    def close(self) -> None:
        """The socket is closed by the application; the connection may live on (orphaned)."""
        if self.user_closed:
            return
        self.user_closed = True
        self.read_shut = True
        if self.state is State.LISTEN:
            assert self.listener is not None
            self.listener.close()
            self.terminate(0)
            return
        if self.state in (State.CLOSED, State.SYN_SENT):
            self.terminate(0)
            return
        if self.linger == 0 or self.receiver.buffered:
            # SO_LINGER 0, or unread data (RFC 2525 2.17): abort with RST.
            self.abort()
            return
        if not self.write_shut:
            self.write_shut = True
            self._queue_fin()
        if self.state is State.FIN_WAIT_2:
            self.wait_timer.set(self.config.fin_timeout)

    def abort(self, error: int = 0) -> None:
        """ABORT: RST if synchronized, then CLOSED (RFC 9293 3.10.5)."""
        if self.state in (State.SYN_RECEIVED, State.ESTABLISHED, State.FIN_WAIT_1,
                          State.FIN_WAIT_2, State.CLOSE_WAIT):
            self.send_rst()
            self.stack.stats.count("tcp.aborts")
        self.terminate(error)

    def terminate(self, error: int) -> None:
        """Enter CLOSED: stop timers, leave the demux, wake everyone."""
        if error:
            self.error = error
        previous = self.state
        self.state = State.CLOSED
        for timer in (self.rto_timer, self.delack_timer, self.keepalive_timer,
                      self.persist_timer, self.wait_timer):
            timer.stop()
        self.sender.stop_timers()
        if self.binding is not None:
            self.table.unbind(self.binding)
            self.binding = None
        self.protocol.connections.discard(self)
        if self.parent is not None:
            self.parent.child_closed(self)
        if previous is not State.CLOSED:
            self.waiters.notify(READABLE | WRITABLE | HANGUP | (ERROR if self.error else 0))

    def _take_error(self) -> OSError:
        code, self.error = self.error, 0
        if code == errno.ECONNRESET:
            return ConnectionResetError(code, os.strerror(code))
        if code == errno.ECONNREFUSED:
            return ConnectionRefusedError(code, os.strerror(code))
        if code == errno.ETIMEDOUT:
            return TimeoutError(code, os.strerror(code))
        return OSError(code, os.strerror(code))

    def take_error(self) -> int:
        code, self.error = self.error, 0
        return code or self.soft_error

    # --- readiness ------------------------------------------------------------------------------

    def readiness(self) -> int:
        mask = 0
        state = self.state
        if state is State.LISTEN:
            return READABLE if self.listener is not None and self.listener.ready() else 0
        if self.receiver.buffered or self.receiver.fin_received or self.read_shut:
            mask |= READABLE
        if state in SENDING and self.sender.free_space() > 0:
            mask |= WRITABLE
        if self.error:
            mask |= ERROR | READABLE | WRITABLE
        if state is State.CLOSED and self.was_connected:
            mask |= HANGUP | READABLE | WRITABLE
        return mask

    def can_send_data(self) -> bool:
        return self.state in DATA_STATES and self.route is not None

    # --- timers -------------------------------------------------------------------------------

    def user_timed_out(self) -> bool:
        """RFC 5482 (TCP_USER_TIMEOUT): data has gone unacknowledged that long, counted
        from the last forward progress or from the first send into an idle connection."""
        limit = self.user_timeout
        return bool(limit) and self.clock.now() - self.progress_time >= limit - 1e-9

    def rto_delay(self, rto: float) -> float:
        """The retransmission timer never runs past the user timeout (as Linux's
        tcp_clamp_rto_to_user_timeout), so the connection fails when it expires."""
        if self.user_timeout:
            return max(0.0, min(rto, self.progress_time + self.user_timeout - self.clock.now()))
        return rto

    def arm_persist(self) -> None:
        """Start probing a zero window; a new closed-window period for the user timeout."""
        if not self.persist_timer.armed and self.sender.flight == 0:
            self.persist_since = None
            self.persist_timer.set(self.sender.current_rto())

    def enter_time_wait(self) -> None:
        self.state = State.TIME_WAIT
        for timer in (self.rto_timer, self.keepalive_timer, self.persist_timer):
            timer.cancel()
        self.wait_timer.set(2 * self.config.msl)
        self.waiters.notify(READABLE | HANGUP)

    # --- ICMP -----------------------------------------------------------------------------------

    def handle_control(self, error: ControlMessage, pkt: PacketBuffer) -> bool | None:
        """RFC 1122 4.2.3.9 and RFC 5927: hard errors abort a connecting socket; others are
        soft errors reported if the connection later times out; PMTU updates the MSS."""
        kind = error.kind
        s = self.sender
        quoted_seq = int.from_bytes(error.quoted[4:8], "big") if len(error.quoted) >= 8 else None
        if quoted_seq is None or not s.snd_una <= unwrap(quoted_seq, s.snd_una) < s.snd_max:
            # RFC 5927 4.1: the quoted segment must be one we have in flight; anything
            # else is stale or a blind attack and changes nothing.
            self.stack.stats.count("tcp.icmp_out_of_window")
            return False  # the network layer undoes a staged path MTU (RFC 8201 5.2)
        if kind is ControlKind.PACKET_TOO_BIG:
            before = self.sender.mss
            self.update_send_mss()
            if self.sender.mss < before:
                self.stack.stats.count("tcp.pmtu_reductions")
                for seg in self.sender.sendmap:
                    self.sender.sendmap.mark_lost(seg)
                self.sender.output()
            return True
        if self.state is State.SYN_SENT and kind in (ControlKind.PORT_UNREACHABLE,
                                                     ControlKind.PROTOCOL_UNREACHABLE):
            self.terminate(errno.ECONNREFUSED)
            return True
        from ustack.transport.datagram import CONTROL_ERRNO

        self.soft_error = CONTROL_ERRNO.get(kind, errno.EHOSTUNREACH)
        return True
