# SPDX-License-Identifier: MIT
"""The send side: send buffer, snd_una/snd_nxt/snd_max, the send window, RTT
estimation (RFC 6298), congestion control and loss recovery strategies, and the
decision of what to send next (Nagle, RFC 9293 3.7.4; sender-side SWS avoidance,
RFC 1122 4.2.3.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ustack.transport.tcp import cc as cc_registry
from ustack.transport.tcp import recovery as recovery_registry
from ustack.transport.tcp import rto
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
        self.recovery = recovery_registry.create("rfc6675", self)
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
        name = "rfc6675" if enabled else "newreno"
        if self.recovery.name != name:
            self.recovery = recovery_registry.create(name, self)
            self.recovery.recovery_point = self.snd_una

    def set_congestion_control(self, name: str) -> None:
        new = cc_registry.create(name, self.mss)
        if self.snd_max > self.iss + 1:  # mid-connection: keep the current window
            new.cwnd, new.ssthresh = self.cc.cwnd, self.cc.ssthresh
        self.cc = new

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
               dupack_candidate: bool, ts_ecr_rtt: float) -> int:
        """Process an acceptable ACK (already unwrapped); returns the bytes newly acked."""
        now = self.clock.now()
        acked = ack - self.snd_una
        fin_acked = self.fin_seq is not None and ack > self.fin_seq
        rs = RateSample()
        rtt_sample = 0.0
        flight_before = self.flight
        if acked > 0:
            done = self.sendmap.ack(ack)
            for seg in done:
                if not seg.sacked:
                    self.rate.on_delivered(seg, rs, now)
            # Karn: time only segments that were never retransmitted.
            clean = [seg for seg in done if seg.xmits == 1]
            if clean:
                rtt_sample = now - clean[-1].sent_at
            elif ts_ecr_rtt > 0:
                rtt_sample = ts_ecr_rtt  # RFC 7323 RTTM is unambiguous
            self.snd_una = ack
            if self.snd_nxt < ack:
                self.snd_nxt = ack
            data_acked = acked - (1 if fin_acked else 0)
            self.buffer.release(min(ack, self.buffer.end))
            self.bytes_acked += max(0, data_acked)
            self.backoffs = 0
        sacked = 0
        if sack_blocks:
            for seg in self.sendmap.sack(sack_blocks):
                sacked += seg.length
                self.rate.on_delivered(seg, rs, now)
        if rtt_sample > 0:
            self.rtt = rto.sample(self.rtt, rtt_sample, self.config.clock_granularity,
                                  self.ep.min_rto, self.config.max_rto)
        self.rate.finish(rs, self.rtt.min_rtt)
        self._update_window(window, seq, ack)
        event = AckEvent(now, max(acked, 0), sacked, dupack_candidate and acked <= 0
                         and (self.flight > 0), flight_before, rtt_sample)
        in_recovery = self.recovery.in_recovery
        self.recovery.on_ack(event)
        if acked > 0 and not in_recovery and not self.recovery.in_recovery:
            self.cc.on_ack(acked, now, rtt_sample or self.rtt.srtt, self.flight)
        if acked > 0 or sacked:
            self._restart_rto()
        return max(acked, 0)

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
        self.backoffs += 1
        self.retransmits_total += 1
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
        sent = 0
        recovery = self.recovery
        options = ep.data_options()
        room = self.mss - (len(options) - ep.standard_option_length)
        # 1. retransmissions: forced (fast retransmit / RTO) or within cwnd - pipe
        while True:
            seg = recovery.next_retransmission()
            if seg is None:
                break
            allowed = recovery.allowance()
            if not (recovery.retransmit_now or force_one) and allowed < min(seg.length, self.mss):
                break
            recovery.retransmit_now = False
            force_one = False
            self._retransmit(seg, room, options)
            sent += 1
        # 2. new data within the peer's window and the congestion allowance
        max_seg = self.max_segment() - (self.mss - room)
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
            self._send_new(size, fin, room, options)
            force_one = False
            sent += 1
            if fin:
                break
        if sent == 0 and self.buffer.end == self.snd_nxt and not self.fin_queued:
            self.rate.mark_app_limited(self.flight)
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
        self.ep.emit_data(seq, payload, fin, options, room if size > room else 0)
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

    def _retransmit(self, seg: SentSegment, room: int, options: bytes) -> None:
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
        self.ep.emit_data(seg.start, payload, fin, options, room if length > room else 0)
        self.sendmap.on_retransmit(seg, now)
        self.retransmits_total += 1
        self.bytes_retrans += length
        self.segs_out += 1
        self.stats.count("tcp.retransmitted_segments")
        self.last_send = now
        if not self.ep.rto_timer.armed:
            self.arm_rto()
