# SPDX-License-Identifier: MIT
"""A PNG of a simulation's time series, drawn with matplotlib (an optional dependency:
``pip install 'ustack[sim]'``)."""

from __future__ import annotations

from pathlib import Path

from ustack.sim.bench import SimResult


def plot(result: SimResult, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("plotting needs matplotlib (pip install matplotlib)") from exc
    c = result.config
    s = result.samples
    t = [x.t for x in s]
    kb = 1 / 1000
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    ax = axes[0]
    ax.plot(t, [x.cwnd * kb for x in s], label="cwnd")
    ax.plot(t, [x.inflight * kb for x in s], label="inflight", alpha=0.8)
    ax.axhline(c.bdp * kb, color="grey", linestyle=":", label="BDP")
    ax.axhline((c.bdp + c.queue_limit) * kb, color="red", linestyle=":", label="BDP + queue")
    ax.set_ylabel("kB")
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(f"{c.stack}+{c.cc}: {c.rate / 1e6:g} Mbit/s, RTT {c.rtt * 1000:g} ms, "
                 f"queue {c.queue_limit / max(c.bdp, 1):.2g} BDP, loss {c.loss * 100:g}% "
                 f"{c.pattern}")
    ax = axes[1]
    mbit = 1e-6
    ax.plot(t, [x.pacing_rate * mbit for x in s], label="pacing rate")
    ax.plot(t, [x.delivery_rate * mbit for x in s], label="delivery rate", alpha=0.8)
    ax.plot(t, [x.goodput * mbit for x in s], label="goodput", alpha=0.6)
    ax.axhline(c.rate * mbit, color="grey", linestyle=":", label="bottleneck")
    ax.set_ylabel("Mbit/s")
    ax.set_ylim(0, c.rate * mbit * 3)
    ax.legend(loc="upper right", fontsize="small")
    ax = axes[2]
    ms = 1000
    ax.plot(t, [x.srtt * ms for x in s], label="srtt")
    ax.plot(t, [x.rtt * ms for x in s], label="latest RTT", alpha=0.6)
    ax.plot(t, [x.queue_delay * ms for x in s], label="queueing delay")
    ax.set_ylabel("ms")
    ax.legend(loc="upper right", fontsize="small")
    ax = axes[3]
    ax.plot(t, [x.retransmits for x in s], label="retransmits")
    ax.plot(t, [x.rtos for x in s], label="RTOs")
    ax.set_ylabel("count")
    ax.set_xlabel("seconds")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
