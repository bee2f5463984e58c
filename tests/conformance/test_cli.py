# SPDX-License-Identifier: MIT
"""``ustack pktdrill``: the per-directory report, the first mismatch of each failing
script, JSON output and the exit status."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ustack.cli.main import main

HERE = Path(__file__).parent


def test_passing_scripts_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pktdrill", "--personality", "linux",
                 str(HERE / "scripts" / "linux" / "handshake")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^strict mode, linux personality, \d+ scripts$", out, re.M)
    assert re.search(r"^all\s+(\d+)\s+0\s+0\s+0\s+\1\s+100\.0%$", out, re.M), out


def test_failures_are_reported_per_directory(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    code = main(["pktdrill", "--mode", "both", "--json", str(report),
                 str(HERE / "selftest" / "fail-window.pkt"),
                 str(HERE / "selftest" / "pass-blocking.pkt")])
    assert code == 1
    out = capsys.readouterr().out
    assert "strict mode, freebsd personality, 2 scripts" in out
    assert "relaxed mode" in out
    assert "fail-window.pkt:12: fail: window\n    expected: 1000\n    got:      65535" in out
    data = json.loads(report.read_text())
    assert data["strict"]["total"] == {"pass": 1, "fail": 1, "unsupported": 0, "error": 0,
                                       "total": 2}
    assert data["relaxed"]["total"]["pass"] == 2
    failed = [r for r in data["strict"]["results"] if r["status"] == "fail"]
    assert failed[0]["message"] == "window" and failed[0]["line"] == 12


def test_missing_script_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pktdrill", "/nonexistent/x.pkt"]) == 2
    assert "no such script" in capsys.readouterr().err
