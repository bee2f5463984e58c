# SPDX-License-Identifier: MIT
"""Things learned from router advertisements that expire (RFC 4861 6.3.4, RFC 4862
5.5.3, RFC 8106 5.1): one timer per key, re-armed whenever the information is
refreshed; an infinite lifetime (all ones) never expires."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from ustack.clock import Clock, Timer

K = TypeVar("K", bound=Hashable)

INFINITE = 0xFFFFFFFF  # RFC 4861 4.6.2: "all one bits represents infinity"


class LifetimeTable(Generic[K]):
    def __init__(self, clock: Clock, on_expire: Callable[[K], None]) -> None:
        self._clock = clock
        self._on_expire = on_expire
        self._deadlines: dict[K, float] = {}  # inf: never
        self._timers: dict[K, Timer] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._deadlines

    def __len__(self) -> int:
        return len(self._deadlines)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._deadlines))

    def set(self, key: K, seconds: int) -> None:
        """Expire ``key`` ``seconds`` from now (INFINITE: never; 0: now, synchronously)."""
        self._cancel(key)
        if seconds == 0:
            self._deadlines.pop(key, None)
            self._on_expire(key)
            return
        if seconds >= INFINITE:
            self._deadlines[key] = float("inf")
            return
        self._deadlines[key] = self._clock.now() + seconds
        self._timers[key] = self._clock.call_later(float(seconds), self._expire, key)

    def remaining(self, key: K) -> float | None:
        """Seconds left (inf when infinite), None when the key is not held."""
        deadline = self._deadlines.get(key)
        return None if deadline is None else max(0.0, deadline - self._clock.now())

    def discard(self, key: K) -> None:
        """Forget ``key`` without calling the expiry handler."""
        self._cancel(key)
        self._deadlines.pop(key, None)

    def clear(self) -> None:
        for key in list(self._deadlines):
            self.discard(key)

    def _cancel(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, key: K) -> None:
        self._timers.pop(key, None)
        if self._deadlines.pop(key, None) is not None:
            self._on_expire(key)
