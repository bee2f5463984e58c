# SPDX-License-Identifier: MIT
"""The TCP transport protocol: validation before demux, RSTs for closed ports
(RFC 9293 3.10.7.1), ISNs, SYN cookie keys and the stack-wide challenge-ACK limit."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.contracts import DeliveryResult
from ustack.network.ratelimit import TokenBucket
from ustack.route import Route
from ustack.transport.tcp import segment
from ustack.transport.tcp.config import TCPConfig
from ustack.transport.tcp.endpoint import TCPEndpoint
from ustack.transport.tcp.isn import ISNGenerator
from ustack.transport.tcp.segment import ACK, FIN, RST, SYN, Segment
from ustack.transport.tcp.seqnum import MASK, geq
from ustack.transport.tcp.syncookies import SynCookies
from ustack.wire import tcp as wire
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.stack import Stack

#: local address, local port, remote address, remote port
FourTuple = tuple[bytes, int, bytes, int]


class TCPProtocol:
    number = IPProto.TCP
    name = "tcp"

    def __init__(self, stack: Stack, config: TCPConfig | None = None) -> None:
        self.stack = stack
        self.config = config or TCPConfig()
        secret = stack.random.randbytes(32)
        self._isn = ISNGenerator(secret)
        self._ts = ISNGenerator(hashlib.blake2b(secret, digest_size=32,
                                                person=b"tcp-ts-offset").digest())
        self.cookies = SynCookies(stack.random.randbytes(32))
        self.connections: set[TCPEndpoint] = set()
        self._challenge = TokenBucket(self.config.challenge_ack_limit,
                                      self.config.challenge_ack_limit, stack.clock.now())
        #: set by the guest-forwarding mode: offered SYNs for addresses with no endpoint
        self.forwarder: object | None = None
        #: while a SYN that ended a TIME-WAIT is delivered: its 4-tuple and the lowest
        #: ISN the new connection may take (reopen_after_time_wait)
        self._reopening: tuple[FourTuple, int] | None = None

    def new_endpoint(self, size: int) -> TCPEndpoint:
        return TCPEndpoint(self, size)

    def passive_open(self, pkt: PacketBuffer, seg: Segment) -> TCPEndpoint | None:
        """An endpoint answering ``seg`` (a SYN) with no listener: the guest forwarder's."""
        from ustack.transport.tcp.passive import passive_open

        return passive_open(self, seg, pkt)

    def isn(self, local: bytes, lport: int, remote: bytes, rport: int) -> int:
        isn = self._isn.isn(self.stack.clock.now(), local, lport, remote, rport)
        floor = self.time_wait_isn(local, lport, remote, rport)
        if floor is not None and not geq(isn, floor):
            return floor
        return isn

    def time_wait_isn(self, local: bytes, lport: int, remote: bytes, rport: int) -> int | None:
        """The lowest ISN for a connection replacing a TIME-WAIT one on this 4-tuple,
        while its SYN is being delivered; None otherwise."""
        reopening = self._reopening
        if reopening is None or reopening[0] != (bytes(local), lport, bytes(remote), rport):
            return None
        return reopening[1]

    def reopen_after_time_wait(self, old: TCPEndpoint, pkt: PacketBuffer) -> None:
        """A SYN ended ``old``'s TIME-WAIT (RFC 9293 3.10.7.4, RFC 6191): deliver it to
        whoever listens. RFC 1122 4.2.2.13: the new incarnation's ISN must lie above the
        old connection's SND.NXT, so that no old duplicate fits the new window. Linux
        takes SND.NXT + 65535 + 2 (tcp_timewait_state_process); ustack keeps its clock
        ISN (RFC 6528) when that is already past this mark."""
        floor = (old.sender.snd_max + 0xFFFF + 2) & MASK
        self._reopening = ((bytes(old.local_addr), old.local_port, bytes(old.remote_addr),
                            old.remote_port), floor)
        try:
            self.stack.deliver_transport_packet(IPProto.TCP, pkt)
        finally:
            self._reopening = None

    def ts_offset(self, local: bytes, lport: int, remote: bytes, rport: int) -> int:
        """RFC 7323 5.4: a per-connection random offset for our TSval clock. Keyed on the
        4-tuple (as Linux's secure_tcp_ts_off), so that a SYN cookie's TSval and the
        connection later rebuilt from the cookie share one clock (the peer's PAWS)."""
        return self._ts.offset(local, lport, remote, rport)

    def challenge_ack_allowed(self, ep: TCPEndpoint | None = None) -> bool:
        """RFC 5961 7: at most ``challenge_ack_limit`` a second across the stack, and
        FreeBSD's per-connection ack_war limit for ``ep``. Both are read from the live
        config, so a sysctl change applies at once (the stack-wide tokens are kept,
        capped to the new burst); as Linux's tcp_challenge_ack_limit, 0 sends none."""
        if ep is not None and not ep.ack_war_allows():
            return False
        bucket = self._challenge
        limit = self.config.challenge_ack_limit
        if bucket.rate != limit:
            bucket.rate = max(limit, 0)
            bucket.burst = max(limit, 0)
        return bucket.take(self.stack.clock.now())

    # --- before demux ---------------------------------------------------------------------

    def parse_ports(self, pkt: PacketBuffer) -> tuple[int, int] | None:
        stats = self.stack.stats
        try:
            hdr = wire.parse(pkt.body(), pkt.src_addr, pkt.dst_addr,
                             verify_checksum=not pkt.checksum_verified)
        except ParseError as err:
            stats.drop("tcp", err.reason)
            return None
        flags = hdr.flags
        if flags & SYN and (flags & RST or (flags & FIN and self.config.drop_synfin)):
            # never legitimate (RFC 9293 3.10.7); SYN+FIN is taken as a SYN where the
            # personality says so (FreeBSD's net.inet.tcp.drop_synfin=0)
            stats.drop("tcp", DropReason.BAD_SEGMENT)
            return None
        if hdr.dst_port == 0 or hdr.src_port == 0:
            stats.drop("tcp", DropReason.BAD_SEGMENT)
            return None
        pkt.transport_header = hdr
        return hdr.src_port, hdr.dst_port

    def handle_unknown_destination(self, pkt: PacketBuffer) -> DeliveryResult:
        handler = getattr(self.forwarder, "handle_tcp", None)
        if handler is not None and handler(pkt):
            return DeliveryResult.DELIVERED
        self.stack.stats.count("tcp.no_endpoint")
        try:
            seg = Segment.from_packet(pkt)
        except ParseError as err:
            self.stack.stats.drop("tcp", err.reason)
            return DeliveryResult.DROPPED
        self.reset_unknown(pkt, seg)
        return DeliveryResult.DELIVERED

    # --- sending without an endpoint -----------------------------------------------------------

    def reset_unknown(self, pkt: PacketBuffer, seg: Segment) -> None:
        """RFC 9293 3.10.7.1: answer a segment for no connection with a RST."""
        if seg.flags & RST:
            return
        try:
            route = self.stack.find_route(pkt.src_addr, pkt.dst_addr)
        except OSError:
            self.stack.stats.drop("tcp", DropReason.NO_ROUTE)
            return
        hdr: wire.TCPHeader = pkt.transport_header  # type: ignore[assignment]
        if seg.flags & ACK:
            self.send_segment(route, hdr.dst_port, hdr.src_port, seg.ack, 0, RST, 0)
        else:
            ack = (seg.seq + seg.length) & 0xFFFFFFFF
            self.send_segment(route, hdr.dst_port, hdr.src_port, 0, ack, RST | ACK, 0)

    def send_reset_for(self, ep: TCPEndpoint, seg: Segment) -> None:
        """A RST for an unacceptable ACK on a connection: <SEQ=SEG.ACK><CTL=RST>."""
        if ep.route is None or seg.flags & RST:
            return
        self.send_segment(ep.route, ep.local_port, ep.remote_port, seg.ack, 0, RST, 0)

    def send_segment(self, route: Route, sport: int, dport: int, seq: int, ack: int,
                     flags: int, window: int, options: bytes = b"") -> None:
        pkt = segment.build(route, sport, dport, seq, ack, flags, window, options)
        route.write_packet(pkt, IPProto.TCP)
        counters = self.stack.stats.counters
        counters["tcp.out_segs"] += 1
        if flags & RST:
            counters["tcp.out_rsts"] += 1


def factory(stack: Stack) -> TCPProtocol:
    return TCPProtocol(stack)
