# SPDX-License-Identifier: MIT
"""The runner's own tests: scripts that pass, and scripts with a deliberate mismatch
that must fail (or be unsupported, or malformed) with the message their header
names. A header line reads ``// expect[ MODE]: STATUS [LINE] [TEXT]``; TEXT must
appear in "message: expected E, got G"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ustack.testing.packetdrill import Mode, Result, RunOptions, Status, run_file

SELFTEST = Path(__file__).parent / "selftest"
SCRIPTS = sorted(SELFTEST.glob("*.pkt"))
EXPECT = re.compile(r"// expect( strict| relaxed)?: (\w+)(?: (\d+))?(?: (.*))?$")


def expectations(path: Path) -> dict[Mode, tuple[Status, int | None, str]]:
    found: dict[Mode, tuple[Status, int | None, str]] = {}
    for line in path.read_text().splitlines():
        m = EXPECT.match(line)
        if m:
            modes = [Mode(m.group(1).strip())] if m.group(1) else list(Mode)
            for mode in modes:
                found[mode] = (Status(m.group(2)), int(m.group(3)) if m.group(3) else None,
                               m.group(4) or "")
    return found


def summary(result: Result) -> str:
    got = (result.got or "").split("   [")[0]
    if result.expected is None:
        return result.message
    return f"{result.message}: expected {result.expected}, got {got}"


def test_every_selftest_states_its_outcome() -> None:
    assert len(SCRIPTS) >= 20
    for path in SCRIPTS:
        assert set(expectations(path)) == set(Mode), path.name


@pytest.mark.parametrize("mode", list(Mode), ids=lambda m: m.value)
@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_selftest(path: Path, mode: Mode) -> None:
    status, line, text = expectations(path)[mode]
    result = run_file(path, RunOptions(mode=mode))
    assert result.status is status, result.describe()
    if line is not None:
        assert result.line == line, result.describe()
    assert text in summary(result), result.describe()


def test_failure_report_names_the_script_line() -> None:
    result = run_file(SELFTEST / "fail-window.pkt", RunOptions(mode=Mode.STRICT))
    text = result.describe()
    assert "fail-window.pkt:12: fail: window" in text
    assert "expected: 1000" in text and "got:      65535" in text
    assert "script:   > . 1:1(0) ack 1 win 1000" in text


def test_ts_val_checked_only_with_a_tick(tmp_path: Path) -> None:
    """Without --tcp_ts_tick_usecs only the first TS val anchors (as packetdrill); with
    it, a TS val off by more than the tolerance is a mismatch."""
    script = (SELFTEST.parent / "scripts" / "linux" / "handshake" / "active-open.pkt")
    text = script.read_text().replace("TS val 150 ecr 700>\n+0   getsockopt",
                                      "TS val 400 ecr 700>\n+0   getsockopt")
    assert text != script.read_text()
    bad = tmp_path / "bad.pkt"
    bad.write_text(text)
    options = RunOptions(personality="linux")
    result = run_file(bad, options)
    assert result.status is Status.FAIL and result.message == "options", result.describe()
    bad.write_text(text.replace("--tcp_ts_tick_usecs=1000\n", ""))
    assert run_file(bad, options).passed
