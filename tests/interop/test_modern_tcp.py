# SPDX-License-Identifier: MIT
"""ustack's rack stack with CUBIC and with BBR sending to the Linux kernel through a tap,
with nftables dropping 1% and 3% of the data segments at random: every download
arrives intact (sha256), beside the kernel's own cubic and bbr senders over the same
impaired receiver (bench/moderntcp.py is the longer version with the report)."""

from __future__ import annotations

import shutil

import pytest
from bench import moderntcp

from tests.interop.hostrun import NEEDS_ROOT

pytestmark = [pytest.mark.interop, NEEDS_ROOT,
              pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables")]


@pytest.mark.parametrize("loss", [1, 3])
def test_rack_cubic_and_bbr_senders_against_kernel_with_random_drop(loss: int) -> None:
    rows = moderntcp.run(8, [loss], [("ustack", "rack", "cubic"), ("ustack", "rack", "bbr"),
                                     ("linux", "-", "cubic"), ("linux", "-", "bbr")])
    assert len(rows) == 4
    for row in rows:
        assert row["sha256_ok"], row
        assert row["bytes"] == 8 << 20
        assert moderntcp.number(row, "mbit") > 1.0
