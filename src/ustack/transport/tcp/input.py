# SPDX-License-Identifier: MIT
"""SEGMENT ARRIVES (RFC 9293 3.10.7) for an endpoint, with PAWS (RFC 7323 5),
RFC 5961's blind-attack mitigations and RFC 1337's TIME-WAIT protection."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.transport.tcp import ecn, reachability, rto
from ustack.transport.tcp.segment import ACK, FIN, RST, SYN, Segment

__all__ = ["Segment", "handle_packet", "synchronized"]
from ustack.transport.tcp.seqnum import MASK, lt, unwrap
from ustack.transport.tcp.state import RECEIVING, State
from ustack.waiter import READABLE, WRITABLE
from ustack.wire.errors import DropReason

if TYPE_CHECKING:
    from ustack.transport.tcp.endpoint import TCPEndpoint

PAWS_IDLE = 24 * 24 * 3600.0  # RFC 7323 5.5: ts_recent is invalid after 24 days idle



def handle_packet(ep: TCPEndpoint, pkt: PacketBuffer) -> None:
    """An endpoint's inbound segment, by state."""
    try:
        seg = Segment.from_packet(pkt)
    except Exception:  # option parse errors: ParseError
        ep.stack.stats.drop("tcp", DropReason.BAD_OPTION)
        return
    ep.stack.stats.counters["tcp.in_segs"] += 1
    state = ep.state
    if state is State.ESTABLISHED:  # the common case, before the rarer states below
        ecn.on_segment(ep, seg, pkt.tos)
        synchronized(ep, seg)
    elif state is State.LISTEN:
        assert ep.listener is not None
        ep.listener.on_segment(seg, pkt)
    elif state is State.SYN_SENT:
        _syn_sent(ep, seg)
    elif state is State.TIME_WAIT and _time_wait_reuse(ep, seg):
        # the 4-tuple is free now: the SYN goes to the listener, if there is one
        ep.protocol.reopen_after_time_wait(ep, pkt)
        return
    elif state is State.TIME_WAIT and ep.config.time_wait_policy == "freebsd":
        _time_wait_freebsd(ep, seg)
    elif state is not State.CLOSED:
        ecn.on_segment(ep, seg, pkt.tos)
        synchronized(ep, seg)
    else:
        # RFC 9293 3.10.7.1: a bound endpoint that is not listening answers like a
        # closed port (anything but a RST draws a RST)
        ep.protocol.reset_unknown(pkt, seg)
        return
    ep.flush_ack()

# --- SYN-SENT (RFC 9293 3.10.7.3) -----------------------------------------------------------

def _syn_sent(ep: TCPEndpoint, seg: Segment) -> None:
    s = ep.sender
    flags = seg.flags
    if flags & ACK:
        ack = unwrap(seg.ack, s.snd_una)
        if ack <= s.iss or ack > s.snd_max:
            if not flags & RST:
                ep.protocol.send_reset_for(ep, seg)
            ep.stack.stats.drop("tcp", DropReason.BAD_SEGMENT)
            return
    if flags & RST:
        if flags & ACK:  # RFC 5961 3.2: only with an acceptable ACK
            ep.stack.stats.count("tcp.connection_refused")
            ep.terminate(errno.ECONNREFUSED)
        return
    if not flags & SYN:
        return
    ep.receiver.init(seg.seq)
    ep.negotiate(seg.options)
    ep.peer_syn_options = seg.options
    s.snd_wnd = seg.window  # RFC 7323 2.2: never scaled in a SYN
    s.snd_wl1 = ep.receiver.irs
    s.snd_wl2 = s.iss
    s.max_snd_wnd = seg.window
    if flags & ACK:
        ecn.on_synack(ep, flags)
        s.snd_una = s.snd_nxt = s.snd_max = s.iss + 1
        rtt_from_syn(ep, seg)
        ep.established()
        ep.schedule_ack(now=True)
        if seg.data or flags & FIN:
            _receive_data(ep, seg, ep.receiver.irs + 1)
        s.output()
    else:
        # Simultaneous open (RFC 9293 3.5, figure 8). Text and FIN in the SYN wait for
        # ESTABLISHED (3.10.7.3: "queue them for processing after the ESTABLISHED state
        # has been reached"): our SYN-ACK acknowledges the SYN only.
        ep.state = State.SYN_RECEIVED
        ecn.on_syn(ep, flags)
        if seg.data or flags & FIN:
            ep.syn_text = Segment(seg.seq, seg.ack, flags & FIN, seg.window, seg.options,
                                  memoryview(bytes(seg.data)))
        ep.send_synack()
        ep.rto_timer.set(ep.config.initial_rto)

def rtt_from_syn(ep: TCPEndpoint, seg: Segment) -> bool:
    """RFC 6298 2.2: a SYN exchange that was not retransmitted gives the first sample."""
    if ep.syn_retries:
        return False
    sample = ep.clock.now() - ep.progress_time
    if sample > 0:
        s = ep.sender
        s.rtt = rto.sample(s.rtt, sample, ep.config.clock_granularity, ep.min_rto,
                           ep.config.max_rto, ep.config.rto_slop)
    return True

# --- everything after (RFC 9293 3.10.7.4) --------------------------------------------------

def _acceptable(ep: TCPEndpoint, seq: int, length: int) -> bool:
    """The four cases of the acceptability test, against the receive window."""
    r = ep.receiver
    # a passive half-open connection is no socket yet: only the window its SYN-ACK offered
    wnd = r.receive_window(advertised_only=ep.passive and ep.state is State.SYN_RECEIVED)
    nxt = r.rcv_nxt
    if length == 0:
        return seq == nxt if wnd == 0 else nxt <= seq < nxt + wnd
    if seq + length == nxt:
        # A retransmission that ends at RCV.NXT (a repeated FIN): its text is old but its
        # ACK is current, so take the ACK, as Linux (tcp_sequence) and FreeBSD do.
        return True
    if wnd == 0:
        return False
    return nxt <= seq < nxt + wnd or nxt <= seq + length - 1 < nxt + wnd

def synchronized(ep: TCPEndpoint, seg: Segment) -> None:
    r = ep.receiver
    s = ep.sender
    stats = ep.stack.stats
    flags = seg.flags
    seq = unwrap(seg.seq, r.rcv_nxt)
    length = seg.length
    now = ep.clock.now()
    ts = seg.options.timestamp if ep.ts_enabled else None
    if flags & SYN and ep.state is State.SYN_RECEIVED and seq == r.irs:
        if not flags & ACK:
            ep.send_synack()  # a retransmitted SYN: the peer did not see our SYN-ACK
            return
        # Simultaneous open (RFC 9293 figure 8, line 6): the peer's SYN-ACK carries the
        # SYN we already hold and the ACK of ours. Take it as that ACK, as Linux does
        # (tcp_validate_incoming); answering it with our SYN-ACK again would ping-pong.
        flags &= ~SYN
        seq += 1
        seg = Segment((seg.seq + 1) & MASK, seg.ack, flags, seg.window, seg.options, seg.data)
        length = seg.length
    if ep.ts_enabled and ts is None and not flags & RST and not ep.config.tolerate_missing_ts:
        stats.drop("tcp", DropReason.BAD_OPTION)  # RFC 7323 3.2: SHOULD drop silently
        return
    if flags & SYN:
        _syn(ep, seq)
        return
    # RFC 7323 5.3 R1: PAWS rejects old duplicates by their timestamp.
    if ts is not None and not flags & RST and lt(ts[0], ep.ts_recent) and \
            now - ep.ts_recent_time < PAWS_IDLE:
        stats.drop("tcp", DropReason.OUT_OF_WINDOW)
        stats.count("tcp.paws_rejected")
        _dupack(ep, seg)
        return
    if not _acceptable(ep, seq, length):
        stats.drop("tcp", DropReason.OUT_OF_WINDOW)
        if flags & RST:
            return
        if seg.data and seq + len(seg.data) <= r.rcv_nxt and ep.config.dsack and \
                ep.sack_enabled:
            ep.dsack_pending = (seq, seq + len(seg.data))  # RFC 2883: duplicate data
        if ep.state is State.TIME_WAIT and flags & FIN and seq + length == r.rcv_nxt:
            # RFC 9293 3.10.7.4 TIME-WAIT: a retransmitted FIN is acknowledged and restarts
            # the 2 MSL timeout (it is an old duplicate, so it lands here; Linux likewise).
            ep.wait_timer.set(2 * ep.config.msl)
        _dupack(ep, seg)
        return
    if flags & RST:
        _on_reset(ep, seq)
        return
    if length and seq + length <= r.rcv_nxt:  # all old: answer at once (and report it)
        if seg.data and ep.config.dsack and ep.sack_enabled:
            ep.dsack_pending = (seq, seq + len(seg.data))
        ep.schedule_ack(now=True)
    if not flags & ACK:
        stats.drop("tcp", DropReason.BAD_SEGMENT)
        return
    ack = unwrap(seg.ack, s.snd_una)
    if ep.state is State.SYN_RECEIVED:
        # (against the ISS, not SND.UNA: a child the full accept queue kept half-open
        # has seen this ACK before, RFC 9293 3.10.7.4 "SYN-RECEIVED STATE")
        if not s.iss < ack <= s.snd_max:
            ep.protocol.send_reset_for(ep, seg)
            return
        s.snd_una = s.iss + 1
        s.snd_wnd = seg.window << s.wscale
        s.snd_wl1, s.snd_wl2 = seq, ack
        s.max_snd_wnd = s.snd_wnd
        rtt_from_syn(ep, seg)
        if not ep.established():
            return  # the listener's accept queue is full: stay half-open
        if ep.syn_text is not None:
            held, ep.syn_text = ep.syn_text, None
            _receive_data(ep, held, r.irs + 1)
    if not _process_ack(ep, seg, seq, ack, ts, now) or ep.closed:
        return
    if seg.data or flags & FIN:
        _receive_data(ep, seg, seq)
    if not ep.closed:
        s.output()

def _syn(ep: TCPEndpoint, seq: int) -> None:
    """A SYN in a synchronized state, whatever its sequence number (checked before the
    window and PAWS, as RFC 5961 4.2 asks): a challenge ACK. Without RFC 5961 (RFC 793
    3.9), a SYN in the window is an error that resets the connection, and one outside
    it draws an ACK like any unacceptable segment. (In TIME-WAIT, a SYN that may open
    a new connection was taken before, by _time_wait_reuse: any other gets an ACK.)"""
    cfg = ep.config
    if (cfg.rfc5961 and cfg.rfc5961_syn) or not _acceptable(ep, seq, 0) or \
            ep.state is State.TIME_WAIT:
        ep.send_challenge_ack()
        return
    ep.stack.stats.count("tcp.resets_for_syn")
    ep.send_rst()
    ep.terminate(errno.ECONNRESET)


def _dupack(ep: TCPEndpoint, seg: Segment) -> None:
    """RFC 9293 3.10.7.4: an unacceptable segment draws an ACK. For pure ACKs that is
    rate-limited per connection, as Linux does (tcp_oow_rate_limited, 500 ms): two ends
    that each find the other's ACKs out of window would otherwise ACK each other forever
    (an ACK loop, e.g. after a forged segment). Segments with data are always answered."""
    if not seg.length and ep.oow_ack_limited():
        return
    ep.schedule_ack(now=True)


def _on_reset(ep: TCPEndpoint, seq: int) -> None:
    """RFC 5961 3.2: reset only on an exact match; in-window RSTs get a challenge ACK."""
    if seq != ep.receiver.rcv_nxt and ep.config.rfc5961 and ep.config.rfc5961_rst:
        ep.send_challenge_ack()
        return
    state = ep.state
    stats = ep.stack.stats
    if state is State.TIME_WAIT:
        stats.count("tcp.rfc1337_rst_ignored")  # RFC 1337: TIME-WAIT assassination
        return
    stats.count("tcp.resets_received")
    if state is State.SYN_RECEIVED:
        ep.terminate(errno.ECONNREFUSED if not ep.passive else 0)
    else:  # the socket may still be open (CLOSING, LAST-ACK): tell it, as BSD and Linux do
        ep.terminate(errno.ECONNRESET)

def _time_wait_reuse(ep: TCPEndpoint, seg: Segment) -> bool:
    """A new SYN for a TIME-WAIT 4-tuple (RFC 1122 4.2.2.13, RFC 6191) ends TIME-WAIT when
    it is clearly newer: a sequence number above RCV.NXT, or a newer timestamp. Checked
    before the window test (the new ISN may fall inside the old window), as Linux's
    tcp_timewait_state_process does."""
    if not seg.flags & SYN or seg.flags & (ACK | RST):
        return False
    ts = seg.options.timestamp if ep.ts_enabled else None
    if ts is not None and lt(ts[0], ep.ts_recent):
        return False  # PAWS: an old duplicate
    seq = unwrap(seg.seq, ep.receiver.rcv_nxt)
    if not (seq > ep.receiver.rcv_nxt or (ts is not None and lt(ep.ts_recent, ts[0]))):
        return False
    ep.stack.stats.count("tcp.time_wait_recycled")
    ep.terminate(0)
    return True


def _time_wait_freebsd(ep: TCPEndpoint, seg: Segment) -> None:
    """TIME-WAIT as FreeBSD's tcp_twcheck(): RSTs (RFC 1337) and segments without ACK
    are dropped, a duplicate FIN restarts the 2 MSL timer, and anything but an exact
    duplicate of the last ACK is answered with an ACK (never rate-limited)."""
    flags = seg.flags
    if flags & RST or not flags & ACK:
        return
    if ep.ts_enabled and seg.options.timestamp is None and not ep.config.tolerate_missing_ts:
        return
    r, s = ep.receiver, ep.sender
    seq = unwrap(seg.seq, r.rcv_nxt)
    if flags & FIN and seq + len(seg.data) + (1 if flags & SYN else 0) + 1 == r.rcv_nxt:
        ep.wait_timer.set(2 * ep.config.msl)
    if flags != ACK or seg.data or seq != r.rcv_nxt or unwrap(seg.ack, s.snd_una) != s.snd_nxt:
        ep.send_ack()


def _process_ack(ep: TCPEndpoint, seg: Segment, seq: int, ack: int,
                 ts: tuple[int, int] | None, now: float) -> bool:
    """The fifth check of 3.10.7.4; returns False when the segment is to be dropped."""
    s = ep.sender
    stats = ep.stack.stats
    if ack > s.snd_max or (ep.config.rfc5961 and ack < s.snd_una - s.max_snd_wnd):
        # RFC 5961 5.2 (and RFC 9293: an ACK for data never sent gets an ACK back).
        stats.count("tcp.bad_ack")
        ep.send_challenge_ack()
        return False
    # The peer is alive (keepalive, RFC 1122 4.2.3.6): only a segment that passed every
    # check up to its ACK says so, not whatever arrives with the 4-tuple (Linux updates
    # rcv_tstamp and clears icsk_probes_out in tcp_ack, past its checks of the ACK).
    ep.last_recv = now
    ep.keepalive_probes = 0
    if ts is not None and seq <= ep.last_ack_sent:
        # RFC 7323 4.3 (2), once the ACK passed its checks (Linux: FLAG_UPDATE_TS_RECENT
        # in tcp_ack): a dropped segment must not move TS.Recent and so PAWS
        ep.ts_recent = ts[0]
        ep.ts_recent_time = now
    if ack < s.snd_una:
        return True  # an old duplicate ACK: ignore it, but take the data
    blocks: list[tuple[int, int]] = []
    dsack = False
    if ep.sack_enabled and seg.options.sack_blocks:
        for left, right in seg.options.sack_blocks:
            lo, hi = unwrap(left, s.snd_una), unwrap(right, s.snd_una)
            if s.snd_una < hi <= s.snd_max and lo < hi:
                blocks.append((max(lo, s.snd_una), hi))
        dsack = _is_dsack(seg.options.sack_blocks, ack, s.snd_una)
    dupack = not seg.data and not seg.flags & (SYN | FIN) and ack == s.snd_una and (
        (seg.window << s.wscale) == s.snd_wnd or bool(blocks))
    ts_rtt = 0.0
    if ts is not None and ts[1]:
        ts_rtt = ((ep.ts_now() - ts[1]) & 0xFFFFFFFF) / 1000.0
        if ts_rtt > 3600:
            ts_rtt = 0.0
    acked = s.on_ack(ack, seg.window << s.wscale, seq, blocks, dupack, ts_rtt, dsack)
    if acked:
        ep.progress_time = now
        if now >= ep.neighbor_confirm_at:  # RFC 4861 7.3.1: forward progress
            reachability.confirm(ep, now)
        ep.persist_probes = 0
        ep.persist_timer.cancel()
    if s.snd_wnd and ep.persist_timer.armed:
        ep.persist_timer.cancel()
    fin_acked = s.fin_seq is not None and ack > s.fin_seq
    state = ep.state
    if fin_acked:
        if state is State.FIN_WAIT_1:
            ep.state = State.FIN_WAIT_2
            if ep.user_closed:
                ep.wait_timer.set(ep.config.fin_timeout)
        elif state is State.CLOSING:
            ep.enter_time_wait()
        elif state is State.LAST_ACK:
            ep.terminate(0)
            return False
    if acked and s.free_space() > 0:
        ep.waiters.notify(WRITABLE)
    if ep.state is State.TIME_WAIT and seg.flags & FIN:
        ep.schedule_ack(now=True)  # a retransmitted FIN: ACK it, restart 2*MSL
        ep.wait_timer.set(2 * ep.config.msl)
        return False
    return True

def _is_dsack(raw: tuple[tuple[int, int], ...], ack: int, snd_una: int) -> bool:
    """RFC 2883 4: the first block reports a duplicate when it lies below the cumulative
    ACK, or inside the second block."""
    left, right = unwrap(raw[0][0], snd_una), unwrap(raw[0][1], snd_una)
    if right <= ack:
        return left < right
    if len(raw) > 1:
        left2, right2 = unwrap(raw[1][0], snd_una), unwrap(raw[1][1], snd_una)
        return left2 <= left and right <= right2
    return False


def _receive_data(ep: TCPEndpoint, seg: Segment, seq: int) -> None:
    """Steps six to eight: queue data, schedule the ACK, act on the FIN."""
    state = ep.state
    if state not in RECEIVING:
        return  # RFC 9293: a FIN was already received; ignore segment text
    if ep.user_closed and ep.read_shut and seg.data:
        # Data for a socket nobody will read (RFC 9293 3.10.7.4 step seven note, Linux).
        ep.stack.stats.count("tcp.data_after_close")
        ep.abort(0)
        return
    r = ep.receiver
    fin = bool(seg.flags & FIN)
    if seg.data:
        # The peer's segment size, as Linux estimates rcv_mss: it sets the receiver's
        # silly-window threshold (RFC 9293 3.8.6.2.2) and the delayed-ACK byte count.
        ep.rcv_mss = max(ep.rcv_mss, min(len(seg.data), ep.advertised_mss()))
        r.mss = ep.rcv_mss
    got = r.receive(seq, seg.data, fin)
    if got.duplicate is not None and ep.sack_enabled and ep.config.dsack:
        ep.dsack_pending = got.duplicate
    ep.rcv_unacked += got.in_order
    immediate = got.out_of_order or got.filled_hole or got.duplicate is not None or \
        got.fin or r.has_out_of_order() or len(seg.data) > 2 * ep.rcv_mss
    if seg.data or fin:
        ep.schedule_ack(now=immediate)
    if got.in_order or got.fin:
        ep.waiters.notify(READABLE)
        if ep.last_recv >= ep.neighbor_confirm_at:  # RFC 4861 7.3.1: new data arrived
            reachability.confirm(ep, ep.last_recv)
    if got.fin:
        ep.stack.stats.count("tcp.fin_received")
        if state is State.ESTABLISHED:
            ep.state = State.CLOSE_WAIT
        elif state is State.FIN_WAIT_1:
            s = ep.sender
            if s.fin_seq is not None and s.snd_una > s.fin_seq:
                ep.enter_time_wait()
            else:
                ep.state = State.CLOSING
        elif state is State.FIN_WAIT_2:
            ep.enter_time_wait()
