# SPDX-License-Identifier: MIT
"""A packetdrill-script runner for ustack: scripts run against a fresh stack on a
virtual clock, with no tun device and no privileges.

    from ustack.testing.packetdrill import run_file, RunOptions, Mode
    result = run_file("test.pkt", RunOptions(mode=Mode.STRICT, personality="freebsd"))
"""

from __future__ import annotations

from pathlib import Path

from ustack.testing.packetdrill.executor import RunOptions, run_script
from ustack.testing.packetdrill.lexer import ScriptError
from ustack.testing.packetdrill.parser import parse_file, parse_script
from ustack.testing.packetdrill.result import Result, Status
from ustack.testing.packetdrill.verify import Mode

__all__ = ["Mode", "Result", "RunOptions", "Status", "parse_file", "parse_script", "run_file",
           "run_script", "run_source"]


def run_source(source: str, options: RunOptions | None = None,
               path: str = "<script>") -> Result:
    options = options or RunOptions()
    try:
        script = parse_script(source, path, options.defines or _defines(options))
    except ScriptError as exc:
        return Result(path, Status.ERROR, exc.line, f"parse error: {exc.message}")
    return run_script(script, options)


def run_file(path: str | Path, options: RunOptions | None = None) -> Result:
    return run_source(Path(path).read_text(errors="replace"), options, str(path))


def _defines(options: RunOptions) -> tuple[str, ...]:
    """What ``#ifdef`` sees by default: the personality's system (as cpp on it would)."""
    return ("FreeBSD",) if options.personality == "freebsd" else ("linux", "__linux__")
