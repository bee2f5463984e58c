# SPDX-License-Identifier: MIT
"""Blocking calls from other threads into the stack's single event-loop thread.

The stack itself takes no locks; the one lock here only decides, race-free,
whether a result reached a caller that may just have given up waiting, so
that a timed-out ``recv`` never consumes data nobody receives.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ustack.clock import Clock
from ustack.waiter import Waiter, WaiterQueue

T = TypeVar("T")


class _Pending(Generic[T]):
    __slots__ = ("abandoned", "done", "error", "lock", "result")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.abandoned = False


def call_in_loop(clock: Clock, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on the loop thread and wait for its result."""
    pending: _Pending[T] = _Pending()

    def run() -> None:
        try:
            pending.result = fn(*args)
        except BaseException as exc:
            pending.error = exc
        pending.done.set()

    clock.call_soon_threadsafe(run)
    pending.done.wait()
    if pending.error is not None:
        raise pending.error
    return pending.result  # type: ignore[return-value]


def _nonempty(items: list[int]) -> Callable[[], bool]:
    return lambda: bool(items)


def timeout_error() -> TimeoutError:
    return TimeoutError(errno.ETIMEDOUT, "timed out")


def would_block() -> BlockingIOError:
    return BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")


def wait_for(clock: Clock, attempt: Callable[[], T], waiters: WaiterQueue, mask: int,
             timeout: float | None) -> T:
    """Call ``attempt`` until it stops raising BlockingIOError, waking on ``mask`` events.

    ``timeout`` None blocks forever; 0 means non-blocking (BlockingIOError escapes).
    From the loop's own thread this works only on a virtual clock, which it advances.
    """
    if clock.in_owner_thread():
        return _wait_same_thread(clock, attempt, waiters, mask, timeout)
    return _wait_other_thread(clock, attempt, waiters, mask, timeout)


def _wait_same_thread(clock: Clock, attempt: Callable[[], T], waiters: WaiterQueue,
                      mask: int, timeout: float | None) -> T:
    deadline = None if timeout is None else clock.now() + timeout
    while True:
        try:
            return attempt()
        except BlockingIOError:
            if timeout == 0:
                raise
        woke: list[int] = []
        waiter = waiters.add(mask, woke.append)
        remaining = None if deadline is None else max(0.0, deadline - clock.now())
        ok = clock.wait_until(_nonempty(woke), remaining)
        waiters.remove(waiter)
        if not ok:
            raise timeout_error()


def _wait_other_thread(clock: Clock, attempt: Callable[[], T], waiters: WaiterQueue,
                       mask: int, timeout: float | None) -> T:
    pending: _Pending[T] = _Pending()
    registered: list[Waiter] = []

    def try_once(_events: int = 0) -> None:
        with pending.lock:
            if pending.abandoned or pending.done.is_set():
                return
            try:
                pending.result = attempt()
            except BlockingIOError:
                if timeout == 0:
                    pending.error = would_block()
                    pending.done.set()
                else:
                    registered.append(waiters.add(mask, try_once))
                return
            except BaseException as exc:
                pending.error = exc
            pending.done.set()

    clock.call_soon_threadsafe(try_once)
    # non-blocking (0) still waits for its one attempt on the loop, which always finishes
    finished = pending.done.wait(timeout or None)
    if not finished:
        with pending.lock:
            finished = pending.done.is_set()
            pending.abandoned = not finished
        if not finished:
            def forget() -> None:
                for waiter in registered:
                    waiters.remove(waiter)

            clock.call_soon_threadsafe(forget)
            raise timeout_error()
    if pending.error is not None:
        raise pending.error
    return pending.result  # type: ignore[return-value]
