# SPDX-License-Identifier: MIT
"""Building and sending segments for an endpoint: SYN, SYN-ACK, data, ACK and RST,
their options (RFC 7323 timestamps, RFC 2018 SACK blocks), and the delayed-ACK
policy (RFC 1122 4.2.3.2, RFC 9293 3.8.6.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ustack.transport.tcp import ecn, segment
from ustack.transport.tcp.segment import ACK, FIN, PSH, RST, SYN
from ustack.transport.tcp.seqnum import MASK
from ustack.transport.tcp.state import State
from ustack.wire import tcp as wire
from ustack.wire.proto import IPProto

if TYPE_CHECKING:
    from ustack.transport.tcp.endpoint import TCPEndpoint

TS_OPTION_LEN = 12  # NOP NOP TS
_TCP = IPProto.TCP  # (read per segment: an enum member lookup costs ~90 ns on 3.11)



def ts_now(ep: TCPEndpoint) -> int:
    """Our TSval clock: milliseconds plus a per-connection random offset (RFC 7323 5.4)."""
    return (int(ep.clock.now() * 1000) + ep.ts_offset) & MASK

def standard_option_length(ep: TCPEndpoint) -> int:
    """Option bytes every data segment carries (the timestamps, when negotiated)."""
    return TS_OPTION_LEN if ep.ts_enabled else 0


def data_options(ep: TCPEndpoint) -> bytes:
    """Options for a non-SYN segment: timestamps and, when we hold holes, SACK blocks."""
    if ep.dsack_pending is None and not (ep.sack_enabled and ep.receiver.has_out_of_order()):
        # the common segment: no SACK block to report, timestamps alone (or nothing);
        # the same bytes as build_options would give, without the record
        if not ep.ts_enabled:
            return b""
        return wire.timestamp_option(ts_now(ep), ep.ts_recent)
    ts = (ts_now(ep), ep.ts_recent) if ep.ts_enabled else None
    blocks: list[tuple[int, int]] = []
    if ep.sack_enabled:
        limit = 3 if ts else 4
        sacks = ep.receiver.sack_blocks(limit)
        dsack = ep.dsack_pending
        if dsack is not None:
            # RFC 2883 4: the D-SACK block first, then the block that holds it, if any
            blocks.append(dsack)
            sacks.sort(key=lambda b: not b[0] <= dsack[0] < dsack[1] <= b[1])
        blocks.extend(sacks[:limit - len(blocks)])
    if ts is None and not blocks:
        return b""
    wrapped = tuple((left & MASK, right & MASK) for left, right in blocks)
    return wire.build_options(wire.TCPOptions(timestamp=ts, sack_blocks=wrapped))

def syn_options(ep: TCPEndpoint, peer: wire.TCPOptions | None = None) -> bytes:
    """Our SYN or SYN-ACK options; a SYN-ACK only echoes what the SYN offered."""
    cfg = ep.config
    if ep.noopt:
        return b""
    wscale = ep.receiver.wscale if cfg.window_scaling else None
    sack = cfg.sack
    ts: tuple[int, int] | None = (ep.ts_now(), 0) if cfg.timestamps else None
    if peer is not None:
        wscale = wscale if peer.wscale is not None else None
        sack = sack and peer.sack_permitted
        ts = (ep.ts_now(), peer.timestamp[0]) if ts and peer.timestamp else None
    opts = wire.TCPOptions(mss=ep.advertised_mss(), wscale=wscale, sack_permitted=sack,
                           timestamp=ts)
    return wire.build_options(opts, cfg.syn_option_order)

def emit(ep: TCPEndpoint, seq: int, flags: int, payload: memoryview | bytes = b"",
         options: bytes = b"", gso_size: int = 0) -> None:
    """Send one segment (seq unwrapped); any ACK it carries settles pending ACKs."""
    route = ep.route
    if route is None:
        return
    ack = ep.receiver.rcv_nxt & MASK if flags & ACK else 0
    # a RST advertises no window (it ends the connection; FreeBSD and Linux send 0)
    window = 0 if flags & RST else ep.receiver.window_field(bool(flags & SYN))
    ect = 0
    if ep.ecn.ok:
        flags, ect = ecn.outgoing(ep, seq, flags, len(payload))
    pkt = segment.build(route, ep.local_port, ep.remote_port, seq & MASK, ack, flags,
                        window, options, payload, gso_size)
    route.write_packet(pkt, _TCP, ep.ttl, ep.tos | ect)
    counters = ep.stack.stats.counters
    counters["tcp.out_segs"] += 1
    if flags & RST:
        counters["tcp.out_rsts"] += 1
    if flags & ACK:
        ep.ack_pending = False
        ep.ack_now = False
        ep.rcv_unacked = 0
        ep.last_ack_sent = ep.receiver.rcv_nxt
        ep.dsack_pending = None
        ep.delack_timer.cancel()

def emit_data(ep: TCPEndpoint, seq: int, payload: memoryview | bytes, fin: bool,
              options: bytes, gso_size: int) -> None:
    flags = ACK
    if fin:
        flags |= FIN
    if payload and seq + len(payload) >= ep.sender.buffer.end:
        flags |= PSH
    emit(ep, seq, flags, payload, options, gso_size)

def send_ack(ep: TCPEndpoint, bare: bool = False) -> None:
    """An ACK from the send path. With ``fin_with_acks`` (FreeBSD's tcp_output) one sent
    while our FIN is unacknowledged carries the FIN again; a ``bare`` ACK (a challenge
    ACK, FreeBSD's tcp_respond) never does."""
    s = ep.sender
    if not bare and ep.config.fin_with_acks and s.fin_seq is not None and \
            s.snd_una <= s.fin_seq and ep.state in (State.FIN_WAIT_1, State.CLOSING,
                                                      State.LAST_ACK):
        emit(ep, s.fin_seq, ACK | FIN, b"", data_options(ep))
        return
    emit(ep, s.snd_nxt, ACK, b"", data_options(ep))

def send_syn(ep: TCPEndpoint) -> None:
    ep.emit(ep.sender.iss, SYN | ecn.syn_flags(ep), b"", syn_options(ep))

def send_synack(ep: TCPEndpoint) -> None:
    ep.emit(ep.sender.iss, SYN | ACK | ecn.synack_flags(ep), b"",
            syn_options(ep, ep.peer_syn_options))

def send_rst(ep: TCPEndpoint) -> None:
    """An abortive close: RST with the next sequence number (RFC 9293 3.10.4 ABORT)."""
    ep.emit(ep.sender.snd_nxt, RST | ACK)

def send_challenge_ack(ep: TCPEndpoint) -> None:
    """RFC 5961 section 7: rate-limited across the stack."""
    if ep.protocol.challenge_ack_allowed(ep):
        ep.stack.stats.count("tcp.challenge_acks")
        send_ack(ep, bare=True)
    else:
        ep.stack.stats.count("tcp.challenge_acks_suppressed")

# --- the ACK policy -----------------------------------------------------------------------

def schedule_ack(ep: TCPEndpoint, now: bool) -> None:
    """Ask for an ACK: at once, or delayed (flushed by :meth:`flush_ack`)."""
    ep.ack_pending = True
    if now or ep.quickack > 0:
        ep.ack_now = True
        if ep.quickack > 0:
            ep.quickack -= 1

def flush_ack(ep: TCPEndpoint) -> None:
    """After input processing (and any data sent with it): send or delay the ACK."""
    if not ep.ack_pending:
        return
    if ep.ack_now or ep.rcv_unacked >= ep.config.delayed_ack_segments * ep.rcv_mss:
        send_ack(ep)
    elif not ep.delack_timer.armed:
        ep.delack_timer.set(ep.delayed_ack)

def on_delack_timer(ep: TCPEndpoint) -> None:
    if ep.ack_pending and ep.route is not None:
        ep.stack.stats.count("tcp.delayed_acks")
        ep.send_ack()
