# SPDX-License-Identifier: MIT
"""Running a tree of scripts and reporting on it: pass, fail (with the first mismatch,
expected vs got) and unsupported, counted per directory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ustack.testing.packetdrill.result import Result, Status


def find_scripts(paths: Iterable[str | Path]) -> list[Path]:
    """The scripts named, and every ``*.pkt`` under the directories named, sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(path.rglob("*.pkt"))
        else:
            found.append(path)
    return found


def run_all(scripts: Iterable[Path], run: Callable[[Path], Result]) -> list[Result]:
    return [run(path) for path in scripts]


@dataclass
class Tally:
    counts: dict[Status, int] = field(default_factory=lambda: dict.fromkeys(Status, 0))

    def add(self, result: Result) -> None:
        self.counts[result.status] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def passed(self) -> int:
        return self.counts[Status.PASS]

    @property
    def rate(self) -> float:
        """Passed over all scripts (unsupported and malformed ones count as not passed)."""
        return self.passed / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, int]:
        return {status.value: n for status, n in self.counts.items()} | {"total": self.total}


def by_directory(results: Iterable[Result], root: str | Path | None = None) -> dict[str, Tally]:
    """Tallies per directory (relative to ``root`` when the scripts are under it)."""
    tallies: dict[str, Tally] = {}
    base = Path(root) if root is not None else None
    for result in results:
        parent = Path(result.path).parent
        if base is not None:
            try:
                parent = parent.relative_to(base)
            except ValueError:
                pass
        tallies.setdefault(str(parent), Tally()).add(result)
    return dict(sorted(tallies.items()))


def total(results: Iterable[Result]) -> Tally:
    tally = Tally()
    for result in results:
        tally.add(result)
    return tally


def format_table(tallies: dict[str, Tally], overall: Tally, title: str = "") -> str:
    width = max([len(name) for name in tallies] + [9])
    lines = [title] if title else []
    lines.append(f"{'directory':<{width}}  {'pass':>5} {'fail':>5} {'unsup':>5} {'error':>5}"
                 f" {'total':>5}   rate")
    for name, t in [*tallies.items(), ("all", overall)]:
        c = t.counts
        lines.append(f"{name:<{width}}  {c[Status.PASS]:>5} {c[Status.FAIL]:>5} "
                     f"{c[Status.UNSUPPORTED]:>5} {c[Status.ERROR]:>5} {t.total:>5} "
                     f"{100 * t.rate:6.1f}%")
    return "\n".join(lines)


def format_report(results: list[Result], root: str | Path | None = None, title: str = "",
                  show_failures: bool = True) -> str:
    """The per-directory table, then each script that did not pass with its mismatch."""
    text = format_table(by_directory(results, root), total(results), title)
    if show_failures:
        bad = [r for r in results if not r.passed]
        if bad:
            text += "\n\n" + "\n".join(r.describe() for r in bad)
    return text


def to_json(results: list[Result], root: str | Path | None = None) -> str:
    return json.dumps({
        "directories": {name: t.as_dict() for name, t in by_directory(results, root).items()},
        "total": total(results).as_dict(),
        "results": [{"path": r.path, "status": r.status.value, "line": r.line,
                     "message": r.message, "expected": r.expected, "got": r.got}
                    for r in results],
    }, indent=2)
