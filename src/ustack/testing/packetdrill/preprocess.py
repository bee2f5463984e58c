# SPDX-License-Identifier: MIT
"""The small part of the C preprocessor that packetdrill scripts use: ``#ifdef``,
``#ifndef``, ``#else``, ``#endif``, ``#define NAME`` (nplab's packetdrill runs
scripts through cpp; the FreeBSD suite picks FreeBSD or STANDARD expectations
this way). Removed lines become empty, so line numbers stay those of the file."""

from __future__ import annotations

from collections.abc import Iterable

from ustack.testing.packetdrill.lexer import ScriptError


def preprocess(source: str, defines: Iterable[str] = ()) -> str:
    defined = set(defines)
    stack: list[bool] = []  # one entry per open #if: is its current branch taken?
    out: list[str] = []
    for number, line in enumerate(source.split("\n"), 1):
        words = line.split()
        directive = words[0] if words and words[0].startswith("#") else None
        if directive is None:
            out.append(line if all(stack) else "")
            continue
        out.append("")
        if directive in ("#ifdef", "#ifndef"):
            if len(words) < 2:
                raise ScriptError(number, f"{directive} needs a name")
            stack.append((words[1] in defined) == (directive == "#ifdef"))
        elif directive == "#else":
            if not stack:
                raise ScriptError(number, "#else without #if")
            stack[-1] = not stack[-1]
        elif directive == "#endif":
            if not stack:
                raise ScriptError(number, "#endif without #if")
            stack.pop()
        elif directive == "#define" and len(words) == 2:
            if all(stack):
                defined.add(words[1])
        else:
            raise ScriptError(number, f"unsupported preprocessor line {line.strip()!r}")
    if stack:
        raise ScriptError(len(out), "#if without #endif")
    return "\n".join(out)
