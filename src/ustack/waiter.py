# SPDX-License-Identifier: MIT
"""Readiness events on endpoints: one-shot waiters and persistent callbacks.

The masks are poll(2)'s bits, so readiness reads like it does for kernel sockets.
"""

from __future__ import annotations

import select
from collections.abc import Callable

READABLE = select.POLLIN
WRITABLE = select.POLLOUT
ERROR = select.POLLERR
HANGUP = select.POLLHUP

Notify = Callable[[int], None]


class Waiter:
    __slots__ = ("callback", "mask", "persistent")

    def __init__(self, mask: int, callback: Notify, persistent: bool) -> None:
        self.mask = mask
        self.callback = callback
        self.persistent = persistent


class WaiterQueue:
    """Who to tell when an endpoint becomes readable, writable or fails."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[Waiter] = []

    def add(self, mask: int, callback: Notify, persistent: bool = False) -> Waiter:
        waiter = Waiter(mask | ERROR | HANGUP, callback, persistent)
        self._waiters.append(waiter)
        return waiter

    def remove(self, waiter: Waiter) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def notify(self, events: int) -> None:
        waiters = self._waiters
        if not waiters:
            return
        if len(waiters) == 1:
            # the common case (a socket's one reader, a splice, a stream transport):
            # no lists to build
            waiter = waiters[0]
            if waiter.mask & events:
                if not waiter.persistent:
                    self._waiters = []
                waiter.callback(events & waiter.mask)
            return
        fire = [w for w in waiters if w.mask & events]
        if not fire:
            return
        self._waiters = [w for w in waiters if w.persistent or not w.mask & events]
        for waiter in fire:
            waiter.callback(events & waiter.mask)

    def clear(self) -> None:
        self._waiters.clear()

    def __len__(self) -> int:
        return len(self._waiters)
