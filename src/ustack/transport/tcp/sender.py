# SPDX-License-Identifier: MIT
"""The send side: send buffer, snd_una/snd_nxt/snd_max, the send window, RTT
estimation (RFC 6298), congestion control and loss recovery strategies, and the
decision of what to send next (Nagle, RFC 9293 3.7.4; sender-side SWS avoidance,
RFC 1122 4.2.3.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ustack.transport.tcp import cc as cc_registry
from ustack.transport.tcp import rto, stacks
from ustack.transport.tcp.cc.base import AckSample
from ustack.transport.tcp.output import data_options, emit_data, standard_option_length
from ustack.transport.tcp.pacing import Pacer, depth_for
from ustack.transport.tcp.rate import DeliveryRate, RateSample
from ustack.transport.tcp.recovery import AckEvent
from ustack.transport.tcp.sendbuf import SendBuffer
from ustack.transport.tcp.sendmap import SendMap, SentSegment

if TYPE_CHECKING:
    from ustack.transport.tcp.endpoint import TCPEndpoint

GSO_LIMIT = 65000  # payload bytes in one GSO super-segment


class Sender:
    def __init__(self, ep: TCPEndpoint, mss: int, sndbuf: int, cc_name: str) -> None:
        self.ep = ep
        self.clock = ep.stack.clock
        self.stats = ep.stack.stats
        self.config = ep.config
        self.iss = 0
        self.snd_una: int = 0
        self.snd_nxt: int = 0
        self.snd_max: int = 0
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self.wscale = 0  # the peer's shift, applied to windows it sends
        self.mss = mss
        self.sndbuf = sndbuf
        self.buffer = SendBuffer(0)
        self.sendmap = SendMap()
        self.rate = DeliveryRate()
        self.rtt = rto.RTTEstimate(rto=self.config.initial_rto)
        self.cc = cc_registry.create(cc_name, mss)
        try:
            self.tcp_stack = stacks.get(self.config.tcp_stack)
        except KeyError:
            self.tcp_stack = stacks.DEFAULT
        self.recovery = self.tcp_stack.recovery_for(self, True)
        # pacing (pacing.py): None unless the congestion control, the socket or the
        # stack's burst mitigation asks for it, so the default path pays nothing
        self.pacer: Pacer | None = None
        self.pacing = self.config.pacing  # pace any congestion control (cwnd/SRTT)
        self.max_pacing_rate = 0.0  # SO_MAX_PACING_RATE, bytes/s; 0: unlimited
        self.update_pacer()
        self.fin_queued = False
        self.fin_seq: int | None = None  # sequence number of our FIN once sent
        self.nodelay = False
        self.cork = False
        self.snd_sml = 0  # end of the last sub-MSS segment sent (Minshall's Nagle)
        self.gso = False
        self.backoffs = 0
        self.last_send = 0.0
        # TCP_INFO
        self.retransmits_total = 0
        self.bytes_acked = 0
        self.bytes_sent = 0
        self.bytes_retrans = 0
        self.segs_out = 0

    def init(self, iss: int) -> None:
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = self.snd_max = iss + 1  # the SYN takes one sequence number
        self.buffer.rebase(iss + 1)
        self.snd_sml = iss + 1
        self.recovery.recovery_point = iss

    def use_sack(self, enabled: bool) -> None:
        new = self.tcp_stack.recovery_for(self, enabled)
        if self.recovery.name != new.name:
            self.recovery.detach()
            self.recovery = new
            self.recovery.recovery_point = self.snd_una
        else:
            new.detach()

    def switch_stack(self, stack: stacks.TCPStack) -> None:
        """Run this connection on ``stack`` from now on (see stacks.py): the scoreboard,
        buffers and windows stay; the new loss recovery takes over any episode."""
        synchronized = self.ep.state.synchronized
        new = stack.recovery_for(self, self.ep.sack_enabled or not synchronized)
        new.adopt(self.recovery)
        self.recovery.detach()
        self.recovery = new
        self.tcp_stack = stack
        self.update_pacer()
        if synchronized:
            self.output()
            self.ep.flush_ack()

    def set_congestion_control(self, name: str) -> None:
        new = cc_registry.create(name, self.mss)
        if self.snd_max > self.iss + 1:  # mid-connection: keep the current window
            new.cwnd, new.ssthresh = self.cc.cwnd, self.cc.ssthresh
        self.cc = new
        self.update_pacer()

    # --- pacing (pacing.py) ----------------------------------------------------------------

    def update_pacer(self) -> None:
        """Create or drop the pacer as the congestion control, the socket's pacing
        setting and the stack's burst mitigation require."""
        want = self.pacing or self.max_pacing_rate > 0 or self.cc.needs_pacing or \
            self.tcp_stack.burst_mitigation
        if want and self.pacer is None:
            self.pacer = Pacer(self.clock, self._on_pacer)
        elif not want and self.pacer is not None:
            self.pacer.stop()
            self.pacer = None
        self.cc.paced = self.pacing or self.cc.needs_pacing

    def pacing_rate(self) -> float:
        """Bytes per second to pace at now (0.0: unpaced)."""
        rate = self.cc.pacing_rate()
        if rate is None and self.pacing:
            # any algorithm, paced as Linux does: 200% of cwnd/SRTT in slow start, 120% after
            srtt = self.rtt.srtt
            if srtt > 0:
                rate = (2.0 if self.cc.in_slow_start else 1.2) * self.cc.cwnd / srtt
        if self.max_pacing_rate > 0:
            rate = min(rate, self.max_pacing_rate) if rate else self.max_pacing_rate
        return rate or 0.0

    def _configure_pacer(self, pacer: Pacer) -> None:
        rate = self.pacing_rate()
        mss = self.mss
        if rate:
            pacer.configure(rate, depth_for(rate, mss, pacer.slot_resolution))
        elif self.tcp_stack.burst_mitigation and self.rtt.srtt > 0:
            # burst mitigation: twice the window's rate, a bucket of max_burst segments
            rate = 2.0 * self.cc.cwnd / self.rtt.srtt
            pacer.configure(rate, depth_for(rate, mss, pacer.slot_resolution,
                                            self.config.max_burst))
        else:
            pacer.configure(0.0, 0)

    def _on_pacer(self) -> None:
        if self.ep.can_send_data():
            self.output()
            self.ep.flush_ack()

    def stop_timers(self) -> None:
        """The connection is closing: stop the pacer and the recovery's own timers."""
        if self.pacer is not None:
            self.pacer.stop()
        self.recovery.detach()

    def set_mss(self, mss: int) -> None:
        self.mss = max(mss, 64)
        self.cc.set_mss(self.mss)

    # --- the application side ---------------------------------------------------------------

    def free_space(self) -> int:
        return max(0, self.sndbuf - len(self.buffer))

    def write(self, data: bytes | memoryview) -> int:
        """Queue what fits; returns the byte count taken."""
        room = self.free_space()
        if room <= 0:
            return 0
        if len(data) > room:
            data = data[:room]
        self.buffer.append(data)
        return len(data)

    @property
    def unsent(self) -> int:
        return self.buffer.end - self.snd_nxt

    @property
    def flight(self) -> int:
        return self.snd_max - self.snd_una

    # --- acknowledgments --------------------------------------------------------------------

    def on_ack(self, ack: int, window: int, seq: int, sack_blocks: list[tuple[int, int]],
               dupack_candidate: bool, ts_ecr_rtt: float, dsack: bool = False) -> int:
        """Process an acceptable ACK (already unwrapped); returns the bytes newly acked."""
        now = self.clock.now()
        acked = ack - self.snd_una
        fin_acked = self.fin_seq is not None and ack > self.fin_seq
        rs = RateSample()
        rate = self.rate
        rtt_sample = 0.0
        flight_before = self.snd_max - self.snd_una
        done: list[SentSegment] = []
        if acked > 0:
            done = self.sendmap.ack(ack)
            for seg in done:
                if not seg.sacked:
                    rate.on_delivered(seg, rs, now)
            # Karn: time only segments that were never retransmitted (the latest such).
            for seg in reversed(done):
                if seg.xmits == 1:
                    rtt_sample = now - seg.sent_at
                    break
            else:
                if ts_ecr_rtt > 0:
                    rtt_sample = ts_ecr_rtt  # RFC 7323 RTTM is unambiguous
            self.snd_una = ack
            if self.snd_nxt < ack:
                self.snd_nxt = ack
            data_acked = acked - 1 if fin_acked else acked
            self.buffer.release(ack if ack < self.buffer.end else self.buffer.end)
            if data_acked > 0:
                self.bytes_acked += data_acked
            self.backoffs = 0
        sacked = 0
        newly_sacked: list[SentSegment] = []
        if sack_blocks:
            newly_sacked = self.sendmap.sack(sack_blocks)
            for seg in newly_sacked:
                sacked += seg.length
                rate.on_delivered(seg, rs, now)
        if rtt_sample > 0:
            config = self.config
            self.rtt = rto.sample(self.rtt, rtt_sample, config.clock_granularity,
                                  self.ep.min_rto, config.max_rto, config.rto_slop)
        rate.finish(rs, self.rtt.min_rtt)
        self._update_window(window, seq, ack)
        newly_acked = acked if acked > 0 else 0
        event = AckEvent(now, newly_acked, sacked, dupack_candidate and acked <= 0
                         and self.snd_max > self.snd_una, flight_before, rtt_sample, done,
                         newly_sacked, dsack)
        in_recovery = self.recovery.in_recovery
        if dsack:
            self.stats.count("tcp.dsack_received")
        cc = self.cc
        if cc.wants_samples:
            sm = self.sendmap
            prior_inflight = sm.pipe(flight_before)
            lost_before = sm.lost_total
            self.recovery.on_ack(event)
            if acked > 0 or sacked:
                cc.on_sample(AckSample(
                    now, rs, rate.delivered, newly_acked + sacked,
                    sm.lost_total - lost_before, sm.pipe(self.flight), prior_inflight,
                    rs.rtt if rs.prior_time else rtt_sample, self.rtt.min_rtt, self.rtt.srtt,
                    self.recovery.in_recovery))
        else:
            self.recovery.on_ack(event)
        # (RFC 3168 6.1.2: an ACK echoing congestion (ECE) never grows the window)
        if acked > 0 and not in_recovery and not self.recovery.in_recovery and \
                not self.ep.ecn.echoed:
            cc.on_ack(acked, now, rtt_sample or self.rtt.srtt, self.snd_max - self.snd_una)
        if acked > 0 or sacked:
            self._restart_rto()
        return newly_acked

    def _update_window(self, window: int, seq: int, ack: int) -> None:
        """RFC 9293 3.10.7.4: take the window from newer segments only (SND.WL1/WL2)."""
        if self.snd_wl1 < seq or (self.snd_wl1 == seq and self.snd_wl2 <= ack):
            self.snd_wnd = window
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            self.max_snd_wnd = max(self.max_snd_wnd, window)

    def _restart_rto(self) -> None:
        if self.snd_max > self.snd_una:
            self.arm_rto()
        else:
            self.ep.rto_timer.cancel()

    def current_rto(self) -> float:
        return min(self.rtt.rto * (1 << self.backoffs), self.config.max_rto)

    def arm_rto(self) -> None:
        self.ep.rto_timer.set(self.ep.rto_delay(self.current_rto()))

    # --- timeouts ---------------------------------------------------------------------------

    def on_timeout(self) -> None:
        """RFC 6298 5.4-5.7: back off, presume loss, retransmit the earliest segment."""
        self.backoffs += 1  # (the resent segment is counted by _retransmit, as Linux counts)
        self.stats.count("tcp.rto")
        self.recovery.on_timeout()
        self.output(force_one=True)
        if self.snd_max > self.snd_una:
            self.arm_rto()

    # --- output -----------------------------------------------------------------------------

    def max_segment(self) -> int:
        if self.gso:
            return max(self.mss, (GSO_LIMIT // self.mss) * self.mss)
        return self.mss

    def output(self, force_one: bool = False) -> int:
        """Send what the windows, Nagle and the recovery strategy allow; returns segments."""
        ep = self.ep
        if not ep.can_send_data():
            return 0
        if (self.buffer.end == self.snd_nxt and not force_one
                and (not self.fin_queued or self.fin_seq is not None)
                and self.sendmap.lost_bytes <= self.sendmap.retrans_bytes):
            # nothing new, nothing to resend: the common case on every ACK of a
            # request/response flow, answered before building any options
            if not self.fin_queued:
                self.rate.mark_app_limited(self.flight)
            return 0
        sent = 0
        recovery = self.recovery
        pacer = self.pacer
        now = 0.0
        if pacer is not None:
            now = self.clock.now()
            self._configure_pacer(pacer)
        options = data_options(ep)
        room = self.mss - (len(options) - standard_option_length(ep))
        # 1. retransmissions: forced (fast retransmit / RTO) or within cwnd - pipe
        while True:
            seg = recovery.next_retransmission()
            if seg is None:
                break
            allowed = recovery.allowance()
            if not (recovery.retransmit_now or force_one) and allowed < min(seg.length, self.mss):
                break
            if pacer is not None and not force_one and not pacer.may_send(now):
                break
            recovery.retransmit_now = False
            force_one = False
            length = self._retransmit(seg, room, options)
            if pacer is not None:
                pacer.on_sent(length, now)
            sent += 1
        # 2. new data within the peer's window and the congestion allowance
        max_seg = self.max_segment() - (self.mss - room)
        new_data = False
        while True:
            unsent = self.buffer.end - self.snd_nxt
            fin_pending = self.fin_queued and self.fin_seq is None
            if unsent <= 0 and not fin_pending:
                break
            wnd_left = self.snd_una + self.snd_wnd - self.snd_nxt
            allowed = min(wnd_left, recovery.allowance())
            if force_one and allowed < 1:
                allowed = min(unsent, self.mss)  # RTO with nothing lost to resend
            size = min(unsent, allowed, max_seg)
            if unsent > 0 and size <= 0:
                if self.snd_wnd == 0 or wnd_left <= 0:
                    ep.arm_persist()
                break
            if 0 < size < room and not self._may_send_partial(size, unsent):
                break
            fin = fin_pending and size == unsent
            if size <= 0 and not fin:
                break
            if pacer is not None and not force_one and not pacer.may_send(now):
                break
            self._send_new(size, fin, room, options)
            if pacer is not None:
                pacer.on_sent(size, now)
            force_one = False
            sent += 1
            new_data = True
            if fin:
                break
        if sent == 0 and self.buffer.end == self.snd_nxt and not self.fin_queued:
            self.rate.mark_app_limited(self.flight)
        if new_data:
            recovery.after_send()
        return sent

    def _may_send_partial(self, size: int, unsent: int) -> bool:
        """Nagle (RFC 9293 3.7.4) and sender SWS avoidance (RFC 1122 4.2.3.4).

        Nagle in Minshall's form, as Linux (tcp_minshall_check): a small segment waits
        only while another *small* one is unacknowledged. The plain rule would hold the
        tail of every write behind full-sized segments until they are acknowledged, which
        against a delayed ACK stalls request/response traffic for the ACK delay."""
        if size < unsent:  # window-limited: only if a fair share of the max window
            return size >= self.max_snd_wnd // 2 or self.flight == 0
        if self.cork:
            return False
        return self.nodelay or self.flight == 0 or self.snd_sml <= self.snd_una

    def _send_new(self, size: int, fin: bool, room: int, options: bytes) -> None:
        seq = self.snd_nxt
        now = self.clock.now()
        payload = self.buffer.view(seq, size) if size else b""
        end = seq + size + (1 if fin else 0)
        if self.snd_max == self.snd_una:
            self.ep.progress_time = now  # the user timeout counts from here (RFC 5482)
        emit_data(self.ep, seq, payload, fin, options, room if size > room else 0)
        if fin:
            self.fin_seq = seq + size
        if 0 < size < room:
            self.snd_sml = seq + size
        if end > self.snd_max:
            if seq >= self.snd_max:
                seg = self.sendmap.append(seq, end, now)
                self.rate.on_send(seg, self.flight, now)
            self.snd_max = end
        self.snd_nxt = end
        self.bytes_sent += size
        self.segs_out += 1
        self.last_send = now
        if not self.ep.rto_timer.armed:
            self.arm_rto()

    def send_probe(self) -> bool | None:
        """A tail loss probe (RFC 8985 7.3), whatever the congestion window says: the
        next new segment if the peer's window takes it, else the last segment sent
        again. True for a retransmission, False for new data, None if nothing went."""
        ep = self.ep
        if not ep.can_send_data():
            return None
        options = data_options(ep)
        room = self.mss - (len(options) - standard_option_length(ep))
        unsent = self.buffer.end - self.snd_nxt
        wnd_left = self.snd_una + self.snd_wnd - self.snd_nxt
        fin_pending = self.fin_queued and self.fin_seq is None
        if (unsent > 0 and wnd_left >= min(unsent, room)) or (fin_pending and unsent == 0):
            size = min(unsent, room)
            self._send_new(size, fin_pending and size == unsent, room, options)
            return False
        segs = self.sendmap.segments
        if not segs:
            return None
        last = segs[-1]
        if last.sacked:
            return None
        if last.end - last.start > self.mss:  # probe with the last segment's worth only
            segs.append(last.split(last.end - self.mss))
            last = segs[-1]
        self._retransmit(last, room, options)
        return True

    def _retransmit(self, seg: SentSegment, room: int, options: bytes) -> int:
        now = self.clock.now()
        fin = self.fin_seq is not None and seg.end == self.fin_seq + 1
        data_end = seg.end - (1 if fin else 0)
        length = data_end - seg.start
        max_seg = self.max_segment() - (self.mss - room)
        if length > max_seg:  # resend only what fits; the rest stays marked lost
            self.sendmap.segments.insert(self.sendmap.segments.index(seg) + 1,
                                         seg.split(seg.start + max_seg))
            length, fin = max_seg, False
        payload = self.buffer.view(seg.start, length) if length else b""
        emit_data(self.ep, seg.start, payload, fin, options, room if length > room else 0)
        self.sendmap.on_retransmit(seg, now)
        self.retransmits_total += 1
        self.bytes_retrans += length
        self.segs_out += 1
        self.stats.count("tcp.retransmitted_segments")
        self.last_send = now
        if not self.ep.rto_timer.armed:
            self.arm_rto()
        return length
