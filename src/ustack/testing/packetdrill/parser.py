# SPDX-License-Identifier: MIT
"""A recursive-descent parser for packetdrill scripts (the grammar of packetdrill's
parser.y, for TCP, ICMP, system calls, commands and code blocks).

    script  := option* event*
    event   := time action
    time    := '+' T ['~' '+' T] | T ['~' T] | '*'
    action  := packet | syscall | `command` | %{ code }%
    packet  := ('<'|'>') [ip_info] (tcp | icmp)
    tcp     := [sport '>' dport] flags seq ['ack' N] ['win' N] ['urg' N] [options]
    syscall := ['...' T] name '(' [expr, ...] ')' '=' expr [ERRNO '(' note ')'] ['(' note ')']
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ustack.testing.packetdrill.lexer import tokenize
from ustack.testing.packetdrill.model import Code, Command, Event, Script, TimeKind, TimeSpec
from ustack.testing.packetdrill.parse_packet import PacketParser
from ustack.testing.packetdrill.parse_syscall import SyscallParser
from ustack.testing.packetdrill.preprocess import preprocess


def parse_file(path: str | Path, defines: Iterable[str] = ()) -> Script:
    return parse_script(Path(path).read_text(errors="replace"), str(path), defines)


def parse_script(source: str, path: str = "<script>", defines: Iterable[str] = ()) -> Script:
    """Parse ``source``; ``defines`` are the names ``#ifdef`` sees as defined."""
    return _Parser(tokenize(preprocess(source, defines)), path).script()


class _Parser(PacketParser, SyscallParser):
    """The script level: header options, then events (packets and calls in the mixins)."""

    def script(self) -> Script:
        script = Script(self.path)
        while self.tok.kind == "OPTION":
            name, _, value = self.next().text[2:].partition("=")
            script.options[name] = value
        while self.tok.kind != "EOF":
            script.events.append(self.event())
        return script

    def event(self) -> Event:
        line = self.tok.line
        time = self.time()
        tok = self.tok
        if tok.is_punct("<") or tok.is_punct(">"):
            return self.packet(line, time)
        if tok.kind == "BACKQ":
            self.next()
            return Command(line, time, tok.text.strip())
        if tok.kind == "CODE":
            self.next()
            return Code(line, time, tok.text)
        if tok.kind == "ELLIPSIS" or (tok.kind == "WORD" and self.peek().is_punct("(")):
            return self.syscall(line, time)
        raise self.error("expected a packet, a system call, a command or a code block")

    def time(self) -> TimeSpec:
        if self.tok.is_punct("*"):
            self.next()
            return TimeSpec(TimeKind.ANY)
        if self.tok.is_punct("+"):
            self.next()
            start = self.number_usecs()
            if self.tok.is_punct("~"):
                self.next()
                self.expect_punct("+")
                return TimeSpec(TimeKind.RELATIVE_RANGE, start, self.number_usecs())
            return TimeSpec(TimeKind.RELATIVE, start)
        start = self.number_usecs()
        if self.tok.is_punct("~"):
            self.next()
            return TimeSpec(TimeKind.ABSOLUTE_RANGE, start, self.number_usecs())
        return TimeSpec(TimeKind.ABSOLUTE, start)
