# SPDX-License-Identifier: MIT
"""The algorithms on their own, no stacks: RFC 9438's cubic function and window updates,
RFC 9406 HyStart++, BBR's windowed max filter and state machine inputs, RFC 6937 PRR,
and RFC 8985 RACK's reordering window and loss detection."""

from __future__ import annotations

import math

import pytest

from ustack.transport.tcp import cc as cc_registry
from ustack.transport.tcp.cc import bbr, cubic
from ustack.transport.tcp.cc.base import AckSample
from ustack.transport.tcp.rate import RateSample
from ustack.transport.tcp.recovery.prr import PRR
from ustack.transport.tcp.recovery.rack import Rack, sent_after
from ustack.transport.tcp.sendmap import SentSegment

MSS = 1000

# --- CUBIC (RFC 9438) --------------------------------------------------------------------------


def test_rfc9438_4_2_k_and_w_cubic() -> None:
    # W_max = 100 segments, cut by beta=0.7 to 70: K = cbrt(30 / 0.4) = cbrt(75)
    k = cubic.cubic_k(100, 70)
    assert k == pytest.approx(75 ** (1 / 3))
    assert cubic.w_cubic(0, 100, k) == pytest.approx(70)  # the epoch starts at cwnd_epoch
    assert cubic.w_cubic(k, 100, k) == pytest.approx(100)  # the plateau at t = K
    assert cubic.w_cubic(k + 1, 100, k) == pytest.approx(100.4)  # convex: C*(1)^3 above


def test_rfc9438_4_6_multiplicative_decrease_and_fast_convergence() -> None:
    c = cubic.Cubic(MSS)
    c.cwnd = 100 * MSS
    c.on_congestion(100 * MSS, 1.0)
    assert c.ssthresh == c.cwnd == 70 * MSS  # beta_cubic = 0.7
    assert c.w_max == 100
    c.cwnd = 90 * MSS  # the next loss below the last W_max: fast convergence (4.7)
    c.on_congestion(90 * MSS, 2.0)
    assert c.w_max == pytest.approx(90 * (1 + 0.7) / 2)
    c.on_timeout(50 * MSS, 3.0)
    assert c.cwnd == MSS  # RFC 9438 4.8: the loss window after an RTO


def test_rfc9438_window_follows_w_cubic_with_ack_clock() -> None:
    """Per-ACK updates (4.4, 4.5) track W_cubic(t) when the RTT is long enough for the
    cubic region (the Reno-friendly estimate stays below it)."""
    c = cubic.Cubic(MSS)
    c.cwnd = 1000 * MSS
    c.on_congestion(c.cwnd, 0.0)
    rtt = 0.1
    now = 0.0
    worst = 0.0
    for _ in range(int(12 / rtt)):  # 12 s of round trips, one ACK per segment
        acks = c.cwnd // MSS
        for _ in range(acks):
            c.on_ack(MSS, now, rtt, c.cwnd)
            now += rtt / acks
        t = now - c.epoch_start
        want = cubic.w_cubic(t, c.w_max, c.k)
        worst = max(worst, abs(c.cwnd / MSS - want) / want)
    assert c.k == pytest.approx((300 / 0.4) ** (1 / 3), rel=1e-3)
    assert worst < 0.05  # within 5% of W_cubic(t) at every round


def test_rfc9438_4_3_reno_friendly_region_for_small_windows() -> None:
    c = cubic.Cubic(MSS)
    c.cwnd = 20 * MSS
    c.on_congestion(c.cwnd, 0.0)
    now = 0.0
    for _ in range(200):  # 200 round trips of 20 ms
        for _ in range(c.cwnd // MSS):
            c.on_ack(MSS, now, 0.02, c.cwnd)
        now += 0.02
    # W_est grew by alpha_cubic (0.53) per RTT up to W_max = 20, then by one per RTT
    # (4.3): far above W_cubic(4 s) = 20 + 0.4*(4 - 2.47)^3 = 21.4
    expected = 20 + (200 - 6 / cubic.ALPHA)
    assert c.cwnd / MSS == pytest.approx(expected, rel=0.05)
    assert c.cwnd / MSS > 5 * cubic.w_cubic(now - c.epoch_start, c.w_max, c.k)


def _sample(now: float, rtt: float, delivered: int, prior: int, in_recovery: bool = False,
            rate: float = 0.0, inflight: int = 0) -> AckSample:
    rs = RateSample(prior_delivered=prior, prior_time=1.0, rtt=rtt, rate=rate)
    return AckSample(now, rs, delivered, MSS, 0, inflight, inflight, rtt, rtt, rtt, in_recovery)


def test_rfc9406_hystart_exits_slow_start_on_rtt_increase() -> None:
    c = cubic.Cubic(MSS)
    now, delivered = 0.0, 0
    hs = c.hystart
    rtts = [0.040] * 3 + [0.052] * 3  # rounds 4-6: +12 ms > max(4 ms, 40/8 ms)
    for rnd, rtt in enumerate(rtts):
        round_start = delivered
        for _ in range(10):
            delivered += MSS
            now += rtt / 10
            c.on_sample(_sample(now, rtt, delivered, round_start))
            c.on_ack(MSS, now, rtt, c.cwnd)
        if rnd < 3:
            assert not hs.in_css
    assert hs.in_css and hs.exits == 1
    cwnd = c.cwnd
    c.on_ack(4 * MSS, now, 0.052, c.cwnd)
    assert c.cwnd == cwnd + MSS  # CSS: a quarter of slow start's growth
    for _ in range(cubic.CSS_ROUNDS):
        round_start = delivered
        for _ in range(10):
            delivered += MSS
            c.on_sample(_sample(now, 0.052, delivered, round_start))
    assert hs.done and not c.in_slow_start  # CSS_ROUNDS later: congestion avoidance


def test_rfc9406_rtt_thresh_is_clamped() -> None:
    assert cubic.rtt_thresh(0.010) == 0.004
    assert cubic.rtt_thresh(0.080) == 0.010
    assert cubic.rtt_thresh(1.0) == 0.016


# --- BBR ---------------------------------------------------------------------------------------


def test_bbr_max_filter_windows_out_old_maxima() -> None:
    f = bbr.MaxFilter(10)
    f.update(0, 100.0)
    f.update(3, 80.0)
    f.update(6, 60.0)
    assert f.get() == 100.0
    f.update(11, 50.0)  # round 0's 100 left the 10-round window: the 80 of round 3 remains
    assert f.get() == 80.0
    f.update(14, 40.0)
    assert f.get() == 60.0
    f.update(30, 10.0)
    assert f.get() == 10.0


def test_bbr_startup_gain_and_full_pipe_then_drain() -> None:
    b = bbr.BBR(MSS)
    assert b.pacing_gain == pytest.approx(2 / math.log(2))
    delivered = 0
    now = 0.0
    for rnd in range(12):
        rate = min(1e6 * 2 ** rnd, 8e6)  # bytes/s: doubling, then the bottleneck
        start = delivered
        for _ in range(5):
            delivered += MSS
            now += 0.01
            b.on_sample(_sample(now, 0.05, delivered, start, rate=rate, inflight=10 * MSS))
    assert b.filled_pipe and b.bandwidth == 8e6
    assert b.mode in (bbr.Mode.DRAIN, bbr.Mode.PROBE_BW)
    assert b.rtprop == 0.05
    assert b.bdp() == int(8e6 * 0.05)


def test_registry_has_the_algorithms() -> None:
    assert {"newreno", "reno", "cubic", "bbr"} <= set(cc_registry.available())
    assert cc_registry.create("bbr", MSS).needs_pacing


# --- PRR (RFC 6937) ----------------------------------------------------------------------------


def _prr_run(ssthresh: int, recover_fs: int, acks: int) -> tuple[list[int], int]:
    """Segments sent per ACK in recovery when each ACK delivers one segment and the
    sender sends all it is allowed (the first ACK forces the fast retransmission);
    returns them and the final pipe."""
    prr = PRR(ssthresh * MSS, recover_fs * MSS, MSS)
    pipe = recover_fs - 1  # the lost segment left the pipe
    sends = []
    for _ in range(acks):
        pipe -= 1
        n = prr.on_ack(MSS, pipe * MSS) // MSS
        if prr.prr_out == 0:
            n = max(n, 1)
        prr.on_sent(n * MSS)
        pipe += n
        sends.append(n)
    return sends, pipe


def test_rfc6937_reno_example_one_send_every_other_ack() -> None:
    # RFC 6937 section 3's Reno example: cwnd 20, one loss, ssthresh 10. The ACK that
    # starts recovery sends the retransmission, then PRR sends on every second ACK
    # while pipe > ssthresh, and recovery ends with pipe at ssthresh (no burst, no stall)
    sends, pipe = _prr_run(10, 20, 17)
    assert sends == [1, 0] * 8 + [0]
    assert pipe == 10


def test_rfc6937_cubic_example_seven_sends_per_ten_acks() -> None:
    # the same with CUBIC's beta 0.7 (ssthresh 14): prr_out = ceil(prr_delivered*14/20)
    sends, pipe = _prr_run(14, 20, 20)
    total = 0
    for i, n in enumerate(sends[:14], 1):
        total += n
        assert total == max(math.ceil(i * 14 / 20), 1)
    assert sends[:10] == [1, 1, 1, 0, 1, 1, 0, 1, 1, 0]  # 7 of every 10 ACKs send
    assert pipe == 14


def test_rfc6937_reduction_bound_when_pipe_falls_below_ssthresh() -> None:
    prr = PRR(10 * MSS, 20 * MSS, MSS)
    # a burst of losses left the pipe at 4: PRR-SSRB catches up by delivered + 1 MSS
    assert prr.on_ack(2 * MSS, 4 * MSS) == 3 * MSS
    prr.on_sent(3 * MSS)
    conservative = PRR(10 * MSS, 20 * MSS, MSS, conservative=True)
    assert conservative.on_ack(2 * MSS, 4 * MSS) == 2 * MSS  # PRR-CRB: no more than delivered


# --- RACK (RFC 8985 section 6) -----------------------------------------------------------------


def _seg(start: int, sent: float, xmits: int = 1) -> SentSegment:
    seg = SentSegment(start, start + MSS, sent)
    seg.xmits = xmits
    return seg


def test_rfc8985_sent_after_orders_by_time_then_sequence() -> None:
    assert sent_after(2.0, 0, 1.0, 5000)
    assert sent_after(1.0, 2000, 1.0, 1000)
    assert not sent_after(1.0, 1000, 1.0, 1000)


def test_rfc8985_reo_wnd_zero_until_reordering_then_quarter_min_rtt() -> None:
    r = Rack()
    r.min_rtt = 0.040
    r.segs_sacked = 3
    assert r.update_reo_wnd(0, 10 * MSS, False, False, 0.05) == 0.0  # DupThresh-like
    r.segs_sacked = 1
    assert r.update_reo_wnd(0, 10 * MSS, False, False, 0.05) == pytest.approx(0.010)
    # a D-SACK: reordering seen, the window steps up once per round
    assert r.update_reo_wnd(0, 10 * MSS, True, True, 0.05) == pytest.approx(0.020)
    assert r.update_reo_wnd(MSS, 10 * MSS, True, True, 0.05) == pytest.approx(0.020)
    assert r.update_reo_wnd(10 * MSS, 20 * MSS, True, True, 0.05) == pytest.approx(0.030)
    assert r.update_reo_wnd(10 * MSS, 20 * MSS, False, True, 0.025) == 0.025  # capped by SRTT
    for _ in range(16):  # 16 recoveries without D-SACK reset the multiplier
        r.on_recovery_exit()
    assert r.reo_wnd_mult == 1


def test_rfc8985_detect_loss_by_time_and_timer() -> None:
    r = Rack()
    segs = [_seg(i * MSS, 1.0 + i * 0.001) for i in range(5)]
    r.min_rtt = 0.04
    r.on_delivered(segs[4], 1.045)  # the last one arrived (SACK), RTT 41 ms
    assert r.rtt == pytest.approx(0.041) and r.xmit_ts == segs[4].sent_at
    r.segs_sacked = 1
    r.reo_wnd = r.reo_wnd_for(False, 0.041)  # 10 ms
    lost, timeout = r.detect_loss(segs[:4], 1.045)
    assert lost == []  # within rtt + reo_wnd of their sending
    # the timer covers the youngest pending segment (RFC 8985: max of the remainders)
    assert timeout == pytest.approx(1.003 + 0.041 + 0.010 - 1.045)
    lost, timeout = r.detect_loss(segs[:4], 1.0525)
    assert [s.start for s in lost] == [0, MSS]
    assert timeout > 0  # the younger ones are still within the window


def test_rfc8985_ambiguous_retransmission_ack_is_ignored() -> None:
    r = Rack()
    r.min_rtt = 0.040
    seg = _seg(0, 2.0, xmits=2)  # retransmitted at t=2.0
    r.on_delivered(seg, 2.005)  # 5 ms later: must be the original's ACK
    assert r.xmit_ts == 0.0
    r.on_delivered(seg, 2.05)
    assert r.xmit_ts == 2.0


def test_rfc8985_reordering_detected_below_fack() -> None:
    r = Rack()
    r.on_delivered(_seg(5 * MSS, 1.005), 1.05)
    assert not r.reordering_seen
    r.on_delivered(_seg(2 * MSS, 1.002), 1.051)  # delivered after a later one: reordered
    assert r.reordering_seen
