# SPDX-License-Identifier: MIT
"""Counters: stack-wide and per NIC, with drops counted by reason."""

from __future__ import annotations

from collections import Counter

from ustack.wire.errors import DropReason


class Stats:
    """A bag of named integer counters. Names are ``layer.event``, e.g. ``ipv4.rx``.

    Drops are counted three ways: ``layer.drop.reason``, ``drop.reason`` and ``drops``,
    so a test can ask "was this dropped, by whom, and why".
    """

    __slots__ = ("counters",)

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def drop(self, layer: str, reason: DropReason) -> None:
        key = reason.name.lower()
        counters = self.counters
        counters[f"{layer}.drop.{key}"] += 1
        counters[f"drop.{key}"] += 1
        counters["drops"] += 1

    def __getitem__(self, name: str) -> int:
        return self.counters[name]

    def drops_by_reason(self) -> dict[str, int]:
        return {k[5:]: v for k, v in self.counters.items() if k.startswith("drop.")}

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.counters.items()))

    def format(self, prefix: str = "") -> str:
        return "\n".join(f"{prefix}{k:40s} {v}" for k, v in self.snapshot().items())
