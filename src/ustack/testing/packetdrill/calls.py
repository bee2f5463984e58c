# SPDX-License-Identifier: MIT
"""What a system call comes to: a result (value and errno), a wait (it would block),
or a script the runner cannot run (unsupported); and the descriptors it works on."""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ustack.testing.packetdrill.mapping import Flow


class Unsupported(Exception):
    """The script needs something the runner (or ustack) does not offer."""


@dataclass
class CallResult:
    value: int
    errno: int = 0
    mismatch: str | None = None  # an out-parameter that differs from the script's


class WouldBlock(Exception):
    def __init__(self, retry: Callable[[], CallResult]) -> None:
        super().__init__("would block")
        self.retry = retry


@dataclass
class FileDesc:
    sock: Any  # a ustack StreamSocket
    flow: Flow
    nonblock: bool = False


def failed(exc: OSError) -> CallResult:
    return CallResult(-1, exc.errno or errno.EIO)
