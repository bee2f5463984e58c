# SPDX-License-Identifier: MIT
"""A listening endpoint's queues: half-open children (the SYN queue), established
ones awaiting accept() (the accept queue, bounded by the backlog), and SYN cookies
when the SYN queue overflows or always (RFC 4987)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.transport.tcp import ecn
from ustack.transport.tcp.passive import passive_open
from ustack.transport.tcp.segment import ACK, RST, SYN, Segment
from ustack.transport.tcp.state import State
from ustack.transport.tcp.syncookies import MSS_TABLE, SynCookies
from ustack.waiter import READABLE
from ustack.wire import tcp as wire
from ustack.wire.tcp import CWR, ECE

if TYPE_CHECKING:
    from ustack.transport.tcp.endpoint import TCPEndpoint



class Listener:
    def __init__(self, ep: TCPEndpoint, backlog: int) -> None:
        self.ep = ep
        self.backlog = backlog
        self.pending: set[TCPEndpoint] = set()
        self.accept_queue: deque[TCPEndpoint] = deque()
        self.overflows = 0

    def ready(self) -> bool:
        return bool(self.accept_queue)

    def accept(self) -> TCPEndpoint | None:
        while self.accept_queue:
            child = self.accept_queue.popleft()
            child.parent = None
            if child.state is not State.CLOSED or child.receiver.buffered:
                return child
        return None

    def _accept_queue_full(self) -> bool:
        return len(self.accept_queue) > self.backlog  # Linux: backlog 0 still admits one

    # --- segments for the listening socket (RFC 9293 3.10.7.2) ----------------------------------

    def on_segment(self, seg: Segment, pkt: PacketBuffer) -> None:
        protocol = self.ep.protocol
        stats = self.ep.stack.stats
        flags = seg.flags
        if flags & RST:
            return
        if flags & ACK:
            if not flags & SYN and self._cookie_ack(seg, pkt):
                return
            protocol.reset_unknown(pkt, seg)
            return
        if not flags & SYN:
            return
        if self._accept_queue_full():
            self.overflows += 1
            stats.count("tcp.listen_overflows")
            return
        mode = self.ep.config.syncookies
        if (mode == "always" or (mode == "auto" and
                                 len(self.pending) >= self.ep.config.max_syn_backlog)) \
                and not self._reopening(pkt):
            self._send_cookie(seg, pkt)
            return
        self._new_child(seg, pkt)

    def _new_child(self, seg: Segment, pkt: PacketBuffer, iss: int | None = None,
                   ) -> TCPEndpoint | None:
        """A half-open child in SYN-RECEIVED. With ``iss`` (a SYN cookie) it is being
        recreated from the final ACK: no SYN-ACK is sent."""
        child = passive_open(self.ep.protocol, seg, pkt, template=self.ep, iss=iss)
        if child is not None:
            child.parent = self
            self.pending.add(child)
        return child

    def admits(self, child: TCPEndpoint) -> bool:
        """Room in the accept queue for a child completing its handshake. Linux drops the
        final ACK when there is none; the child stays half-open and retransmits its SYN-ACK."""
        if self._accept_queue_full():
            self.overflows += 1
            self.ep.stack.stats.count("tcp.listen_overflows")
            return False
        return True

    def child_established(self, child: TCPEndpoint) -> None:
        self.pending.discard(child)
        self.accept_queue.append(child)
        self.ep.waiters.notify(READABLE)

    def child_closed(self, child: TCPEndpoint) -> None:
        self.pending.discard(child)

    def close(self) -> None:
        """Closing a listener resets every connection it has not handed out."""
        for child in [*self.pending, *self.accept_queue]:
            child.parent = None
            child.abort()
        self.pending.clear()
        self.accept_queue.clear()

    # --- SYN cookies --------------------------------------------------------------------------

    def _reopening(self, pkt: PacketBuffer) -> bool:
        """The SYN ended a TIME-WAIT on its 4-tuple: its ISN must follow the old
        connection's (RFC 1122 4.2.2.13), which a cookie cannot, so it gets a child
        (as Linux's tcp_conn_request: no cookie when tcp_tw_isn is set)."""
        sport, dport = self.ep.table_ports(pkt)
        return self.ep.protocol.time_wait_isn(pkt.dst_addr, dport, pkt.src_addr,
                                              sport) is not None

    def _four_tuple(self, pkt: PacketBuffer, seg_ports: tuple[int, int]) -> bytes:
        return pkt.src_addr + pkt.dst_addr + seg_ports[0].to_bytes(2, "big") + \
            seg_ports[1].to_bytes(2, "big")

    def _send_cookie(self, seg: Segment, pkt: PacketBuffer) -> None:
        parent = self.ep
        protocol = parent.protocol
        ports = parent.table_ports(pkt)
        try:
            route = parent.stack.find_route(pkt.src_addr, pkt.dst_addr)
        except OSError:
            return
        mss = min(seg.options.mss or parent.config.default_mss,
                  route.nic.link.mtu - parent.network_header_length() - wire.MIN_HEADER_LEN)
        now = parent.clock.now()
        cookie = protocol.cookies.make(now, self._four_tuple(pkt, ports), seg.seq, mss)
        opts = seg.options
        config = parent.config
        wscale = parent.receiver.wscale if opts.wscale is not None and \
            config.window_scaling else None
        sack = config.sack and opts.sack_permitted
        # RFC 3168 6.1.1: an ECN-setup SYN-ACK only if the ACK can tell us we agreed
        use_ecn = ecn.accepts_syn(config.ecn, seg.flags)
        ts = None
        if parent.noopt:
            # FreeBSD's TCP_NOOPT (SCF_NOOPT, syncache_respond): no option at all, not
            # even our MSS; the cookie still keeps the peer's MSS for our segments
            wscale, sack, use_ecn = None, False, False
        elif opts.timestamp is not None and config.timestamps:
            # Our TSval on the connection's own clock (see TCPProtocol.ts_offset); its low
            # bits carry the *peer's* window scale (ours is a setting), SACK-permitted
            # and ECN.
            clock = int(now * 1000) + protocol.ts_offset(pkt.dst_addr, ports[1], pkt.src_addr,
                                                         ports[0])
            peer_wscale = min(opts.wscale, 14) if wscale is not None and \
                opts.wscale is not None else None
            tsval = SynCookies.encode_ts(clock, peer_wscale, sack, use_ecn)
            ts = (tsval, opts.timestamp[0])
        else:
            # without timestamps there is nowhere to keep them (as Linux: no ECN either)
            wscale, sack, use_ecn = None, False, False
        options = b"" if parent.noopt else wire.build_options(wire.TCPOptions(
            mss=MSS_TABLE[SynCookies.mss_index(mss)], wscale=wscale, sack_permitted=sack,
            timestamp=ts), config.syn_option_order)
        window = min(parent.receiver.rcvbuf, 0xFFFF)
        protocol.send_segment(route, ports[1], ports[0], cookie, (seg.seq + 1) & 0xFFFFFFFF,
                              SYN | ACK | (ECE if use_ecn else 0), window, options)
        parent.stack.stats.count("tcp.syncookies_sent")

    def _cookie_ack(self, seg: Segment, pkt: PacketBuffer) -> bool:
        parent = self.ep
        if parent.config.syncookies == "never":
            return False
        protocol = parent.protocol
        ports = parent.table_ports(pkt)
        cookie = (seg.ack - 1) & 0xFFFFFFFF
        peer_isn = (seg.seq - 1) & 0xFFFFFFFF
        mss = protocol.cookies.check(parent.clock.now(), self._four_tuple(pkt, ports), peer_isn,
                                     cookie)
        if mss is None:
            parent.stack.stats.count("tcp.syncookies_failed")
            return False
        if self._accept_queue_full():
            parent.stack.stats.count("tcp.listen_overflows")
            return True
        ts = seg.options.timestamp
        if parent.noopt or not parent.config.timestamps:
            ts = None  # our SYN-ACK sent no TSval: a TSecr carries nothing of ours
        wscale, sack = (SynCookies.decode_ts(ts[1]) if ts is not None else (None, False))
        use_ecn = ts is not None and SynCookies.decode_ecn(ts[1])
        synthetic = wire.TCPOptions(mss=mss, wscale=wscale, sack_permitted=sack,
                                    timestamp=(ts[0], 0) if ts else None)
        # the SYN as the cookie remembers it: an ECN-setup SYN if our SYN-ACK agreed
        flags = SYN | ACK | (ECE | CWR if use_ecn else 0)
        syn = Segment(peer_isn, 0, flags, seg.window, synthetic, memoryview(b""))
        child = self._new_child(syn, pkt, iss=cookie)
        if child is None:
            return True
        # The window our cookie SYN-ACK advertised (the same buffer, the same computation):
        # the ACK may already carry data within it.
        child.receiver.window_field(syn=True)
        parent.stack.stats.count("tcp.syncookies_received")
        child.synchronized_input(seg)
        return True
