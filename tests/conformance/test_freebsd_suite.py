# SPDX-License-Identifier: MIT
"""The FreeBSD TCP test suite (../shared/conformance/freebsd-tcp-testsuite, read in
place) in both modes, with the FreeBSD personality: the pass count of every directory
must not drop below the figures recorded in freebsd_baseline.json. Raise them by
fixing the stack, then record the new figures:

    python3 -m tests.conformance.test_freebsd_suite --record
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from ustack.testing.packetdrill import Mode, Result, RunOptions, run_file
from ustack.testing.packetdrill.report import by_directory, find_scripts, format_report

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(os.environ.get("USTACK_FREEBSD_SUITE",
                            ROOT.parent / "shared" / "conformance" / "freebsd-tcp-testsuite"))
BASELINE = Path(__file__).parent / "freebsd_baseline.json"

needs_suite = pytest.mark.skipif(not SUITE.is_dir(), reason=f"{SUITE} is absent")


def run_suite(mode: Mode) -> list[Result]:
    options = RunOptions(mode=mode, personality="freebsd")
    return [run_file(path, options) for path in find_scripts([SUITE])]


def pass_counts(results: list[Result]) -> dict[str, dict[str, int]]:
    return {name: {"pass": t.passed, "total": t.total}
            for name, t in by_directory(results, SUITE).items()}


@needs_suite
@pytest.mark.parametrize("mode", list(Mode), ids=lambda m: m.value)
def test_pass_rates_do_not_drop(mode: Mode) -> None:
    recorded = json.loads(BASELINE.read_text())[mode.value]
    results = run_suite(mode)
    counts = pass_counts(results)
    worse = {name: (counts.get(name, {"pass": 0})["pass"], want["pass"])
             for name, want in recorded["directories"].items()
             if counts.get(name, {"pass": 0})["pass"] < want["pass"]}
    assert not worse, (f"pass counts dropped (now, recorded): {worse}\n\n"
                       + format_report([r for r in results if not r.passed], SUITE))
    passed = sum(c["pass"] for c in counts.values())
    assert passed >= recorded["pass"]
    assert passed / len(results) >= 0.9  # the goal: 90% in strict mode, and relaxed


def record() -> None:
    data = {}
    for mode in Mode:
        results = run_suite(mode)
        counts = pass_counts(results)
        data[mode.value] = {"pass": sum(c["pass"] for c in counts.values()),
                            "total": len(results), "directories": counts}
        print(f"{mode.value}: {data[mode.value]['pass']}/{len(results)}")
    BASELINE.write_text(_compact(data))


def _compact(data: dict[str, Any]) -> str:
    """One line per directory, so that a change of the figures reads well in a diff."""
    lines = ["{"]
    for i, (mode, figures) in enumerate(sorted(data.items())):
        lines.append(f'  "{mode}": {{"pass": {figures["pass"]}, "total": {figures["total"]}, '
                     '"directories": {')
        dirs = sorted(figures["directories"].items())
        for j, (name, c) in enumerate(dirs):
            comma = "," if j < len(dirs) - 1 else ""
            lines.append(f'    "{name}": {{"pass": {c["pass"]}, "total": {c["total"]}}}{comma}')
        lines.append("  }}" + ("," if i < len(data) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit(__doc__)
    record()
