# SPDX-License-Identifier: MIT
"""ustack's own packetdrill scripts for the TCP features built so far: those under
scripts/linux run with ustack's default (Linux-like) personality, those under
scripts/freebsd with the FreeBSD one. Every one passes in strict mode, and so in
relaxed mode too."""

from __future__ import annotations

from pathlib import Path

import pytest

from ustack.testing.packetdrill import Mode, RunOptions, run_file

SCRIPTS = Path(__file__).parent / "scripts"
ALL = sorted(SCRIPTS.rglob("*.pkt"))


def personality(path: Path) -> str:
    return path.relative_to(SCRIPTS).parts[0]


def test_scripts_cover_both_personalities() -> None:
    assert {personality(p) for p in ALL} == {"linux", "freebsd"}
    assert len(ALL) >= 30


@pytest.mark.parametrize("mode", list(Mode), ids=lambda m: m.value)
@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(SCRIPTS)))
def test_script(path: Path, mode: Mode) -> None:
    result = run_file(path, RunOptions(mode=mode, personality=personality(path)))
    assert result.passed, result.describe()
