# SPDX-License-Identifier: MIT
"""A restartable timer slot: moving a deadline later never touches the wheel.

TCP restarts its retransmission timer on almost every ACK. The slot keeps one
wheel timer armed for the earliest deadline it has promised; when that fires
early relative to a deadline moved later, it re-arms itself instead of calling
back. Cancelling just forgets the deadline.
"""

from __future__ import annotations

from collections.abc import Callable

from ustack.clock import Clock, Timer


class TimerSlot:
    __slots__ = ("_callback", "_clock", "_timer", "deadline")

    def __init__(self, clock: Clock, callback: Callable[[], None]) -> None:
        self._clock = clock
        self._callback = callback
        self._timer: Timer | None = None
        self.deadline: float | None = None

    @property
    def armed(self) -> bool:
        return self.deadline is not None

    def set(self, delay: float) -> None:
        self.set_at(self._clock.now() + delay)

    def set_at(self, deadline: float) -> None:
        self.deadline = deadline
        timer = self._timer
        if timer is not None and timer.active and timer.when <= deadline:
            return  # the armed timer fires first and will re-arm for the new deadline
        if timer is not None:
            timer.cancel()
        self._timer = self._clock.call_at(deadline, self._fire)

    def cancel(self) -> None:
        self.deadline = None

    def stop(self) -> None:
        """Cancel and release the wheel timer too (when the connection goes away)."""
        self.deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        deadline = self.deadline
        if deadline is None:
            return
        if self._clock.now() + 1e-9 < deadline:
            self._timer = self._clock.call_at(deadline, self._fire)
            return
        self.deadline = None
        self._callback()
