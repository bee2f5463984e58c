# SPDX-License-Identifier: MIT
"""Running a stack for real: an asyncio loop that owns it, in this thread or a background one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ustack.clock import RealClock
from ustack.stack import Stack

T = TypeVar("T")


def new_stack(loop: asyncio.AbstractEventLoop, **kwargs: Any) -> Stack:
    """A stack driven by ``loop`` (call from the thread that runs the loop)."""
    clock = RealClock(loop)
    clock.bind_thread()
    return Stack(clock, **kwargs)


class StackThread:
    """A stack whose event loop runs on a background thread.

    Sockets from ``stack.socket()`` work from any other thread with blocking calls;
    set-up that touches the stack goes through :meth:`call`::

        with StackThread() as st:
            nic = st.call(st.stack.create_nic, link)
    """

    def __init__(self, name: str = "ustack", **stack_kwargs: Any) -> None:
        self._name = name
        self._kwargs = stack_kwargs
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stack: Stack | None = None
        self._error: BaseException | None = None

    @property
    def stack(self) -> Stack:
        if self._stack is None:
            raise RuntimeError("StackThread not started")
        return self._stack

    def start(self) -> Stack:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self.stack

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._stack = new_stack(loop, **self._kwargs)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        return self.stack.call(fn, *args)

    def stop(self) -> None:
        if self.loop is None or self._thread is None:
            return
        if self._stack is not None:
            self.call(self._stack.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> StackThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
