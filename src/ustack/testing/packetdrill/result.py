# SPDX-License-Identifier: MIT
"""The outcome of running one script."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ustack.testing.packetdrill.model import Event


class Status(enum.Enum):
    PASS = "pass"
    FAIL = "fail"  # the stack did something else than the script says
    UNSUPPORTED = "unsupported"  # the script needs what the runner or ustack lacks
    ERROR = "error"  # the script itself is malformed


@dataclass(frozen=True)
class Result:
    path: str
    status: Status
    line: int | None = None
    message: str = ""  # what went wrong: "window", "timing", "unknown sysctl ..."
    expected: str | None = None
    got: str | None = None
    script_line: str | None = None  # the event as the script wrote it (packets)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS

    def describe(self) -> str:
        """One or a few lines: where, what, expected vs got."""
        if self.status is Status.PASS:
            return f"{self.path}: pass"
        where = f"{self.path}:{self.line}" if self.line else self.path
        text = f"{where}: {self.status.value}: {self.message}"
        if self.expected is not None or self.got is not None:
            text += f"\n    expected: {self.expected}\n    got:      {self.got}"
        if self.script_line:
            text += f"\n    script:   {self.script_line}"
        return text


class Failure(Exception):
    def __init__(self, event: Event | None, message: str, expected: str | None = None,
                 got: str | None = None, script_line: str | None = None,
                 status: Status = Status.FAIL) -> None:
        super().__init__(message)
        self.event = event
        self.message = message
        self.expected = expected
        self.got = got
        self.script_line = script_line
        self.status = status
