# SPDX-License-Identifier: MIT
"""The simulation bench (ustack.sim): BBR fills a deep-buffered bottleneck without a
standing queue, CUBIC's window follows RFC 9438's W_cubic(t) after a loss, loss
patterns behave as named, and ``ustack sim`` writes its summary, CSV and PNG. Fixed
seeds, virtual clock: each run is the same every time."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ustack.cli.main import main
from ustack.sim import SimConfig, Simulation, parse_rate, parse_time, run
from ustack.sim.bench import Sample
from ustack.transport.tcp.cc import cubic

CUBIC_TOLERANCE = 0.03  # |cwnd - W_cubic(t)| / W_cubic(t), sampled every 50 ms


def test_parse_rate_and_time() -> None:
    assert parse_rate("100mbit") == 100e6
    assert parse_rate("1.5Gbit") == 1.5e9
    assert parse_rate("800k") == 800e3
    assert parse_time("40ms") == pytest.approx(0.04)
    assert parse_time("2") == 2.0
    with pytest.raises(ValueError):
        parse_rate("fast")


def test_bbr_fills_a_deep_buffer_without_a_standing_queue() -> None:
    """BBR v1 paces at its bottleneck bandwidth estimate and caps inflight at 2 BDP, so
    a queue 8 BDP deep stays nearly empty: at least 90% of the bottleneck, standing
    queue well below 2 BDP (loss-based CUBIC fills the same buffer)."""
    cfg = SimConfig(cc="bbr", stack="rack", rate=20e6, rtt=0.04, queue_bdp=8, seconds=6.0,
                    seed=1)
    s = run(cfg).summary
    assert s["intact"]
    assert s["goodput_ratio"] >= 0.90
    assert s["utilisation"] >= 0.95
    assert s["standing_queue_bdp"] < 2.0
    assert s["standing_queue_bdp"] < 0.25  # in fact nearly empty
    assert s["max_queue_bdp"] < 2.0  # even STARTUP's overshoot stays below 2 BDP
    assert s["retransmits"] == 0 and s["rtos"] == 0
    # pacing at the model's rate: the measured spacing is the one asked for
    assert s["pacing_spacing"] == pytest.approx(s["pacing_spacing_target"], rel=0.02)
    cubic_run = run(SimConfig(cc="cubic", stack="rack", rate=20e6, rtt=0.04, queue_bdp=8,
                              seconds=6.0, seed=1)).summary
    assert cubic_run["standing_queue_bdp"] > 2.0


def test_rfc9438_cubic_window_follows_w_cubic_after_a_loss() -> None:
    """20 Mbit/s, 100 ms, a 1-BDP drop-tail queue: after each loss the window should
    trace W_cubic(t) = C*(t-K)^3 + W_max from the epoch start, concave up to the old
    maximum at t=K, then convex beyond it."""
    epochs: dict[float, list[tuple[float, float, float, float]]] = {}

    def watch(sim: Simulation, _sample: Sample) -> None:
        cc = sim.sender.sender.cc
        assert isinstance(cc, cubic.Cubic)
        if cc.epoch_start > 0 and not sim.sender.sender.recovery.in_recovery:
            epochs.setdefault(cc.epoch_start, []).append(
                (sim.clock.now() - cc.epoch_start, cc.cwnd / sim.sender.sender.mss,
                 cc.w_max, cc.k))

    cfg = SimConfig(cc="cubic", stack="rack", rate=20e6, rtt=0.1, queue_bdp=1,
                    seconds=13.5, interval=0.05, seed=1)
    result = Simulation(cfg, on_sample=watch).run()
    assert result.summary["intact"]
    longest = max(epochs.values(), key=len)
    _t, _w, w_max, k = longest[0]
    assert k > 3.0  # a real cubic epoch, not the Reno-friendly region
    assert longest[-1][0] > k + 2.0  # it reached the convex region past the plateau
    worst = 0.0
    for t, cwnd, wm, kk in longest:
        assert (wm, kk) == (w_max, k)
        if t < cfg.rtt:
            continue
        want = cubic.w_cubic(t, w_max, k)
        worst = max(worst, abs(cwnd - want) / want)
    assert worst < CUBIC_TOLERANCE, worst
    assert min(w for _t, w, _m, _k in longest) < w_max < max(w for _t, w, _m, _k in longest)


@pytest.mark.parametrize("pattern", ["random", "bursts"])
def test_loss_patterns_lose_about_the_asked_rate(pattern: str) -> None:
    s = run(SimConfig(cc="bbr", stack="rack", rate=10e6, rtt=0.02, queue_bdp=8, loss=0.02,
                      pattern=pattern, burst=4, seconds=3.0, seed=3)).summary
    assert s["intact"]
    frames = s["delivered_bytes"] / 1448
    assert 0.01 < s["random_drops"] / frames < 0.04
    # every loss is repaired, except those of the run's last ~100 ms (seed 3: two frames)
    assert s["retransmits"] >= s["random_drops"] - 2


def test_tail_pattern_drops_only_at_queue_overflow() -> None:
    s = run(SimConfig(cc="cubic", stack="default", rate=10e6, rtt=0.04, queue_bdp=0.5,
                      pattern="tail", loss=0.05, seconds=3.0)).summary
    assert s["random_drops"] == 0 and s["queue_drops"] > 0
    assert s["queue_delay_max"] <= 0.5 * 0.04 + 0.002


def test_cli_sim_prints_summary_and_writes_csv_png_json(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        ) -> None:
    pytest.importorskip("matplotlib")
    csv_path, png, js = tmp_path / "ts.csv", tmp_path / "plot.png", tmp_path / "sum.json"
    code = main(["sim", "--cc", "bbr", "--rate", "10mbit", "--rtt", "20ms", "--loss", "1%",
                 "--seconds", "2", "--csv", str(csv_path), "--png", str(png), "--json",
                 str(js)])
    assert code == 0
    out = capsys.readouterr().out
    for word in ("goodput", "utilisation", "retransmits", "RTOs", "queueing delay"):
        assert word in out
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) >= 190  # every 10 ms for 2 s
    assert {"t", "cwnd", "pacing_rate", "rtt", "delivery_rate", "inflight"} <= set(rows[0])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(js.read_text())
    assert summary["intact"] and summary["random_drops"] > 0


def test_cli_sim_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--rate", "fast"]) == 2
    assert "not a rate" in capsys.readouterr().err
