# SPDX-License-Identifier: MIT
"""Bulk transfers over impaired links (seeded, so every run is the same): 50 MB over
IPv4 with 2% loss and reordering each way, and a transfer each way at once over IPv6.
The oracle is the SHA-256 of the byte stream."""

from __future__ import annotations

import hashlib
import time

from tests.unit.tcp.helpers import AF6, Impairment, connect, impaired_pair, pattern, pump


def test_bulk_50mb_ipv4_two_percent_loss_with_reordering() -> None:
    lossy = Impairment(loss=0.02, delay=0.005, reorder=0.03, reorder_delay=0.004)
    p, imp_a, _imp_b = impaired_pair(tx_a=lossy, tx_b=Impairment(loss=0.02, delay=0.005),
                                    seed=7)
    c = connect(p)
    data = pattern(50 * 1024 * 1024, seed=50)
    started, t0 = time.perf_counter(), p.clock.now()
    got = pump(p, [(c.client, c.server, data)], timeout=3600, chunk=1 << 20)
    elapsed = time.perf_counter() - started
    assert hashlib.sha256(got[0]).hexdigest() == hashlib.sha256(data).hexdigest()
    stats = imp_a.stats.counters
    assert stats["tx.lost_random"] > 500 and stats["tx.reordered"] > 500
    start = p.clock.now()
    p.run(5)
    info = c.client.tcp_info()
    assert info.bytes_acked == len(data) and info.unacked == 0
    assert info.total_retrans >= stats["tx.lost_random"] * 0.9
    print(f"\n50 MB: {elapsed:.1f} s real, {start - t0:.1f} s virtual, "
          f"{info.total_retrans} retransmissions, {p.a.stats['tcp.rto']} RTOs, "
          f"{p.a.stats['tcp.fast_recovery']} fast recoveries")


def test_bulk_both_directions_at_once_ipv6() -> None:
    lossy = Impairment(loss=0.01, delay=0.002, reorder=0.02, reorder_delay=0.002)
    p, _a, _b = impaired_pair(tx_a=lossy, tx_b=lossy, seed=3)
    c = connect(p, AF6)
    up = pattern(3 * 1024 * 1024, seed=61)
    down = pattern(2 * 1024 * 1024, seed=62)
    got = pump(p, [(c.client, c.server, up), (c.server, c.client, down)], timeout=3600)
    assert hashlib.sha256(got[0]).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got[1]).digest() == hashlib.sha256(down).digest()
    assert c.client.tcp_info().total_retrans > 0 and c.server.tcp_info().total_retrans > 0
