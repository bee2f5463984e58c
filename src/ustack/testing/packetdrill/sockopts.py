# SPDX-License-Identifier: MIT
"""getsockopt and setsockopt: script values to ustack's socket options and back."""

from __future__ import annotations

from typing import Any

from ustack.testing.packetdrill.calls import CallResult, Unsupported, failed
from ustack.testing.packetdrill.model import Syscall
from ustack.testing.packetdrill.symbols import Value, as_int, pack_linger

# --- options -------------------------------------------------------------------------------

def getsockopt(sock: Any, call: Syscall, args: list[Value]) -> CallResult:
    """``getsockopt(fd, level, name, [value], [len])``: the value is compared."""
    level = as_int(args[1], call.line, "level")
    name = as_int(args[2], call.line, "option")
    want = args[3] if len(args) > 3 else None
    try:
        got = sock.getsockopt(level, name)
    except OSError as exc:
        return failed(exc)
    mismatch = _compare_option(want, got, call)
    return CallResult(0, mismatch=mismatch)

def setsockopt(sock: Any, call: Syscall, args: list[Value]) -> CallResult:
    """``setsockopt(fd, level, name, value, len)``: ints, ``[int]``, linger structs, strings."""
    level = as_int(args[1], call.line, "level")
    name = as_int(args[2], call.line, "option")
    raw = args[3] if len(args) > 3 else None
    value: int | bytes
    if isinstance(raw, dict):
        value = pack_linger(raw, call.line)
    elif isinstance(raw, str):
        value = raw.encode()
    elif isinstance(raw, bytes):
        value = raw
    else:
        value = as_int(raw, call.line, "option value")
    try:
        sock.setsockopt(level, name, value)
    except OSError as exc:
        return failed(exc)
    return CallResult(0)


def _compare_option(want: Value, got: Any, call: Syscall) -> str | None:
    """An option's value against the script's ``[value]`` (None when they agree)."""
    if isinstance(want, list) and len(want) == 1:
        want = want[0]
    if want is None:
        return None
    if isinstance(want, dict):
        if isinstance(got, bytes) and len(got) == 8:
            got_linger = pack_linger({"onoff": int.from_bytes(got[:4], "little"),
                                      "linger": int.from_bytes(got[4:], "little")}, call.line)
            if got_linger != pack_linger(want, call.line):
                return f"expected {want!r}, got {got!r}"
            return None
        raise Unsupported("struct values of this socket option")
    if isinstance(got, bytes):
        got = got.rstrip(b"\0").decode(errors="replace")
    if not isinstance(got, int | str):
        raise Unsupported(f"comparing a {type(got).__name__} option value")
    if got != want:
        return f"value: expected [{want!s}], got [{got}]" if isinstance(want, int | str) \
            else f"value: expected {want!r}, got [{got}]"
    return None
