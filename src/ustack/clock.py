# SPDX-License-Identifier: MIT
"""Injected time: one timer wheel, driven by a real asyncio clock or a virtual one.

Every timer in the stack goes through a :class:`Clock`. Timers live on a
:class:`TimerWheel`: a hashed wheel of fine slots (100 us by default, enough for
pacing) with an index of the occupied slots, so arming and cancelling are O(1)
and finding the next expiry does not scan empty slots.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

Callback = Callable[..., object]


class Timer:
    """A handle to one scheduled callback; cancel it any number of times."""

    __slots__ = ("_args", "_callback", "_slot", "_wheel", "when")

    def __init__(self, wheel: TimerWheel, when: float, slot: int, callback: Callback,
                 args: tuple[Any, ...]) -> None:
        self._wheel: TimerWheel | None = wheel
        self.when = when
        self._slot = slot
        self._callback = callback
        self._args = args

    @property
    def active(self) -> bool:
        return self._wheel is not None

    def cancel(self) -> None:
        wheel = self._wheel
        if wheel is not None:
            self._wheel = None
            wheel._remove(self._slot, self)

    def _fire(self) -> None:
        self._wheel = None
        self._callback(*self._args)


class TimerWheel:
    """Timers bucketed by slot number; a heap of occupied slot numbers orders the buckets."""

    def __init__(self, resolution: float = 1e-4) -> None:
        self.resolution = resolution
        self._slots: dict[int, dict[Timer, None]] = {}
        self._occupied: list[int] = []  # heap; may hold slots emptied by cancellation
        self.count = 0

    def _slot_of(self, when: float) -> int:
        # The slot whose start is at or after ``when``: a timer never fires early.
        slot = math.ceil(when / self.resolution - 1e-6)
        return slot + 1 if slot * self.resolution < when else slot

    def schedule(self, when: float, callback: Callback, *args: Any) -> Timer:
        slot = self._slot_of(when)
        timer = Timer(self, when, slot, callback, args)
        bucket = self._slots.get(slot)
        if bucket is None:
            bucket = self._slots[slot] = {}
            heapq.heappush(self._occupied, slot)
        bucket[timer] = None
        self.count += 1
        return timer

    def _remove(self, slot: int, timer: Timer) -> None:
        bucket = self._slots.get(slot)
        if bucket is not None and bucket.pop(timer, 0) is None:
            self.count -= 1
            if not bucket:
                del self._slots[slot]

    def _requeue(self, slot: int, timers: list[Timer]) -> None:
        """Put back the rest of a slot whose callback raised, ahead of any armed since."""
        rest = [t for t in timers if t._wheel is not None]
        if not rest:
            return
        newer = self._slots.get(slot)
        self._slots[slot] = {**dict.fromkeys(rest), **(newer or {})}
        if newer is None:
            heapq.heappush(self._occupied, slot)

    def next_deadline(self) -> float | None:
        """The time at which the earliest occupied slot becomes due."""
        occupied = self._occupied
        while occupied and occupied[0] not in self._slots:
            heapq.heappop(occupied)
        return occupied[0] * self.resolution if occupied else None

    def expire(self, now: float, on_error: Callable[[BaseException, Timer], None] | None = None,
               ) -> int:
        """Run every timer whose slot is due at ``now``, in slot then arming order."""
        due = math.floor(now / self.resolution + 1e-6)
        if due * self.resolution > now:  # a slot is due only once its start has passed
            due -= 1
        occupied = self._occupied
        fired = 0
        while occupied and occupied[0] <= due:
            slot = heapq.heappop(occupied)
            bucket = self._slots.pop(slot, None)
            if not bucket:
                continue
            timers = list(bucket)
            for i, timer in enumerate(timers):
                self.count -= 1
                if timer._wheel is None:  # cancelled by an earlier callback of this slot
                    continue
                fired += 1
                if on_error is None:
                    try:
                        timer._fire()
                    except BaseException:
                        self._requeue(slot, timers[i + 1:])
                        raise
                else:
                    try:
                        timer._fire()
                    except Exception as exc:  # reported, never swallowed silently
                        on_error(exc, timer)
        return fired


class Clock(Protocol):
    """What the stack needs of time."""

    wheel: TimerWheel

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callback, *args: Any) -> Timer: ...

    def call_later(self, delay: float, callback: Callback, *args: Any) -> Timer: ...

    def call_soon(self, callback: Callback, *args: Any) -> None: ...

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None: ...

    def in_owner_thread(self) -> bool: ...

    def wait_until(self, ready: Callable[[], bool], timeout: float | None) -> bool: ...


class VirtualClock:
    """Simulated time for tests: nothing happens until the test advances the clock.

    Exceptions from callbacks propagate to the caller, so a failing timer fails
    the test. ``call_soon`` work runs before time moves on.
    """

    def __init__(self, start: float = 1000.0, resolution: float = 1e-5) -> None:
        self.wheel = TimerWheel(resolution)
        self._now = start
        self._ready: deque[tuple[Callback, tuple[Any, ...]]] = deque()
        self._threadsafe: deque[tuple[Callback, tuple[Any, ...]]] = deque()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callback, *args: Any) -> Timer:
        return self.wheel.schedule(max(when, self._now), callback, *args)

    def call_later(self, delay: float, callback: Callback, *args: Any) -> Timer:
        return self.wheel.schedule(self._now + max(delay, 0.0), callback, *args)

    def call_soon(self, callback: Callback, *args: Any) -> None:
        self._ready.append((callback, args))

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        self._threadsafe.append((callback, args))

    def in_owner_thread(self) -> bool:
        return True

    def run_ready(self, limit: int = 1_000_000) -> int:
        """Run queued callbacks (including those they queue) until none remain."""
        ran = 0
        ready = self._ready
        while self._threadsafe:
            ready.append(self._threadsafe.popleft())
        while ready:
            callback, args = ready.popleft()
            callback(*args)
            ran += 1
            if ran >= limit:
                raise RuntimeError("call_soon storm: callbacks keep scheduling callbacks")
        return ran

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing timers in order on the way."""
        self.run_until(lambda: False, seconds)

    def run_until(self, ready: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run events until ``ready()`` holds or ``timeout`` seconds of virtual time pass."""
        limit = math.inf if timeout is None else self._now + timeout
        while True:
            self.run_ready()
            if ready():
                return True
            deadline = self.wheel.next_deadline()
            # a slot start within float noise of the limit is due at the limit
            if deadline is None or deadline - limit > self.wheel.resolution * 1e-6:
                if limit != math.inf:
                    self._now = max(self._now, limit)
                return ready()
            self._now = max(self._now, deadline)
            self.wheel.expire(self._now)

    def wait_until(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        return self.run_until(ready, timeout)


class RealClock:
    """Wall-clock time on an asyncio loop; the wheel is serviced by one loop timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None,
                 resolution: float = 1e-4) -> None:
        self.loop = loop or asyncio.get_event_loop()
        self.wheel = TimerWheel(resolution)
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = math.inf
        self._owner: int | None = None
        self.timer_errors = 0
        #: The loop's time, read many times per packet. The stock loops tell it with
        #: time.monotonic(): call that directly, without the two Python-level calls of a
        #: method that calls loop.time(); any other loop keeps its own time() method.
        self.now: Callable[[], float] = (
            time.monotonic if type(self.loop).time is asyncio.BaseEventLoop.time
            else self.loop.time)

    def call_at(self, when: float, callback: Callback, *args: Any) -> Timer:
        timer = self.wheel.schedule(when, callback, *args)
        deadline = timer._slot * self.wheel.resolution
        if deadline < self._armed_for:
            self._arm(deadline)
        return timer

    def call_later(self, delay: float, callback: Callback, *args: Any) -> Timer:
        return self.call_at(self.loop.time() + max(delay, 0.0), callback, *args)

    def call_soon(self, callback: Callback, *args: Any) -> None:
        self.loop.call_soon(callback, *args)

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        self.loop.call_soon_threadsafe(callback, *args)

    def bind_thread(self) -> None:
        """Record the thread that runs the loop (optional: a running loop is recognised)."""
        self._owner = threading.get_ident()

    def in_owner_thread(self) -> bool:
        if self._owner is not None:
            return self._owner == threading.get_ident()
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def wait_until(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        raise RuntimeError("blocking call on the stack's own event loop thread; "
                           "use non-blocking sockets or ustack.aio there")

    def _arm(self, deadline: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_for = deadline
        self._handle = self.loop.call_at(deadline, self._service)

    def _service(self) -> None:
        self._handle = None
        self._armed_for = math.inf
        self.wheel.expire(self.loop.time(), self._report)
        deadline = self.wheel.next_deadline()
        if deadline is not None:
            self._arm(deadline)

    def _report(self, exc: BaseException, timer: Timer) -> None:
        self.timer_errors += 1
        self.loop.call_exception_handler({
            "message": f"ustack timer callback {timer._callback!r} raised",
            "exception": exc,
        })
