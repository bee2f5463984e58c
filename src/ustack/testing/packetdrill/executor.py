# SPDX-License-Identifier: MIT
"""Running a parsed script against a fresh stack on a virtual clock.

The executor follows packetdrill's run loop: each event's relative time counts
from when the previous one finished; inbound packets, system calls, commands
and code blocks wait for their time; an outbound packet is sniffed at once
(it may have been sent earlier) or awaited, then compared (see :mod:`verify`).
A system call written ``+t...end`` may block: the script goes on while it does,
and its return is checked against ``end``. One without ``...`` that blocks holds
the script until it returns, as packetdrill's main thread would be held.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ustack.testing.packetdrill.calls import CallResult, Unsupported, WouldBlock
from ustack.testing.packetdrill.code import CodeFailed, run_code
from ustack.testing.packetdrill.commands import CommandFailed, Commands
from ustack.testing.packetdrill.harness import Addresses, Harness
from ustack.testing.packetdrill.lexer import ScriptError
from ustack.testing.packetdrill.mapping import Flows
from ustack.testing.packetdrill.model import (
    Code,
    Command,
    Event,
    IcmpPacket,
    Script,
    Syscall,
    TcpPacket,
    TimeKind,
    Word,
)
from ustack.testing.packetdrill.packet_events import PacketEvents
from ustack.testing.packetdrill.result import Failure, Result, Status
from ustack.testing.packetdrill.symbols import errno_name, evaluate
from ustack.testing.packetdrill.syscalls import Process
from ustack.testing.packetdrill.verify import Mode, check_time
from ustack.transport.tcp.personality import PERSONALITIES

BLOCK_LIMIT = 3600.0  # seconds a call without '...' may hold the script
KNOWN_OPTIONS = {"ip_version", "tolerance_usecs", "mtu", "local_ip", "remote_ip", "gateway_ip",
                 "bind_port", "connect_port", "tcp_ts_tick_usecs", "speed", "netmask_ip",
                 "wire_server_ip", "so_rcvbuf"}


@dataclass
class RunOptions:
    mode: Mode = Mode.STRICT
    personality: str = "freebsd"
    defines: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class _Blocked:
    call: Syscall
    retry: Callable[[], CallResult]
    end: int  # usecs
    done: CallResult | None = None
    at: int = 0


class Executor:
    def __init__(self, script: Script, options: RunOptions) -> None:
        self.script = script
        self.options = options
        opts = script.options
        unknown = set(opts) - KNOWN_OPTIONS
        if unknown:
            raise Failure(None, f"unsupported option --{sorted(unknown)[0]}",
                          status=Status.UNSUPPORTED)
        version = opts.get("ip_version", "ipv4")
        if version not in ("ipv4", "ipv6"):
            raise Failure(None, f"unsupported ip_version {version}", status=Status.UNSUPPORTED)
        self.tolerance = int(opts.get("tolerance_usecs", "4000"))
        self.ts_tick = int(opts.get("tcp_ts_tick_usecs", "0"))
        base = Addresses.defaults(4 if version == "ipv4" else 6)
        addrs = Addresses(opts.get("local_ip", base.local), opts.get("remote_ip", base.remote),
                          opts.get("gateway_ip", base.gateway), base.prefix)
        config = PERSONALITIES[options.personality]()
        self.h = Harness(config, addrs, int(opts.get("mtu", "1500")))
        self.flows = Flows()
        self.bind_port = int(opts.get("bind_port", "8080"))
        self.process = Process(self.h, self.flows, self.bind_port,
                               int(opts.get("connect_port", "8080")))
        self.commands = Commands(self.h.tcp, self.process)
        self.packets = PacketEvents(self.h, self.flows, self.bind_port, options.mode,
                                    self.tolerance, self.ts_tick, self._advance,
                                    self._poll_blocked)
        self.blocked: _Blocked | None = None
        self.strict = options.mode is Mode.STRICT

    # --- the run loop --------------------------------------------------------------------------

    def run(self) -> Result:
        event: Event | None = None
        try:
            for i, event in enumerate(self.script.events):
                if i == 0 and (event.time.kind is not TimeKind.ABSOLUTE or event.time.start):
                    raise Failure(event, "first event should be at time 0",
                                  status=Status.ERROR)
                self._run_event(event)
            self._finish_blocked(None)
        except Failure as failure:
            return self._result(failure)
        except Unsupported as exc:
            return self._result(Failure(event, str(exc), status=Status.UNSUPPORTED))
        except ScriptError as exc:
            return Result(self.script.path, Status.ERROR, exc.line, exc.message)
        return Result(self.script.path, Status.PASS)

    def _result(self, f: Failure) -> Result:
        return Result(self.script.path, f.status, f.event.line if f.event else None, f.message,
                      f.expected, f.got, f.script_line)

    def _run_event(self, event: Event) -> None:
        start, end = event.time.start, event.time.end
        if event.time.relative:
            offset = self.h.now_usecs()
            start += offset
            end = end + offset if end is not None else None
        if isinstance(event, TcpPacket) and not event.inbound:
            self.packets.outbound(event, start, end)
            return
        self._wait_until(event, start)
        if isinstance(event, TcpPacket):
            self.packets.inbound(event)
        elif isinstance(event, IcmpPacket):
            self.packets.icmp(event)
        elif isinstance(event, Syscall):
            self._syscall(event, start)
        elif isinstance(event, Command):
            self._command(event)
        elif isinstance(event, Code):
            self._code(event)

    # --- time ----------------------------------------------------------------------------------

    def _advance(self, until: int, stop: Callable[[], bool] | None = None) -> None:
        """Run the clock to ``until`` (usecs), completing a blocked call on the way;
        ``stop`` (a callable) ends the wait early."""
        def ready() -> bool:
            self._poll_blocked()
            return stop() if stop is not None else False

        remaining = self.h.at(until) - self.h.clock.now()
        if remaining > 0:
            self.h.clock.run_until(ready, remaining)
        else:
            self.h.clock.run_ready()
            ready()

    def _wait_until(self, event: Event, start: int) -> None:
        self._advance(start)
        late = self.h.now_usecs() - start
        if self.strict and late > self.tolerance:
            raise Failure(event, "timing", f"at {start / 1e6:.6f} s",
                          f"at {self.h.now_usecs() / 1e6:.6f} s (the previous event ran late)")

    # --- blocking system calls -----------------------------------------------------------------

    def _poll_blocked(self) -> None:
        b = self.blocked
        if b is None or b.done is not None:
            return
        try:
            b.done = b.retry()
            b.at = self.h.now_usecs()
        except WouldBlock as wb:
            b.retry = wb.retry

    def _finish_blocked(self, event: Event | None) -> None:
        """Check a blocking call that returned (or fail one that never did, by the end of
        the script or by the next system call: calls run one at a time, as packetdrill's
        system call thread runs them)."""
        b = self.blocked
        if b is None:
            return
        self._poll_blocked()
        if b.done is None:
            when = "at the end of the script" if event is None else \
                f"when the next system call came (line {event.line})"
            raise Failure(b.call, f"{b.call.name}() was still blocked {when}",
                          expected=f"return at {b.end / 1e6:.6f} s", got="still blocked")
        self.blocked = None
        self._check_call(b.call, b.done)
        if self.strict:
            bad = check_time(TimeKind.ABSOLUTE, b.end, None, b.at, self.tolerance)
            if bad is not None:
                raise Failure(b.call, f"{b.call.name}() returned at the wrong time",
                              bad.expected, bad.got)

    # --- system calls, commands, code ----------------------------------------------------------

    def _syscall(self, call: Syscall, start: int) -> None:
        if self.blocked is not None:
            self._finish_blocked(call)
        try:
            result = self.process.call(call)
        except WouldBlock as wb:
            if call.end is not None:
                end = call.end + (start - call.time.start if call.time.relative else 0)
                self.blocked = _Blocked(call, wb.retry, end)
                return
            result = self._block_here(call, wb)
        self._check_call(call, result)
        if call.end is not None and self.strict:
            end = call.end + (start - call.time.start if call.time.relative else 0)
            bad = check_time(TimeKind.ABSOLUTE, end, None, self.h.now_usecs(), self.tolerance)
            if bad is not None:
                raise Failure(call, f"{call.name}() returned at the wrong time (it did not "
                              "block)", bad.expected, bad.got)

    def _block_here(self, call: Syscall, wb: WouldBlock) -> CallResult:
        b = _Blocked(call, wb.retry, 0)
        saved, self.blocked = self.blocked, b

        def returned() -> bool:
            self._poll_blocked()
            return b.done is not None

        try:
            self.h.clock.run_until(returned, BLOCK_LIMIT)
        finally:
            self.blocked = saved
        if b.done is None:
            raise Failure(call, f"{call.name}() blocked for more than {BLOCK_LIMIT:.0f} s")
        return b.done

    def _check_call(self, call: Syscall, result: CallResult) -> None:
        want = evaluate(call.result, call.line)
        got = _format_result(result)
        if want is not None and want != result.value:
            expected = f"{want!r}" + (f" {call.errno}" if call.errno else "")
            raise Failure(call, f"{call.name}() returned {got}", expected, got)
        if result.value == -1 and call.errno is not None:
            want_errno = evaluate(Word(call.errno), call.line)
            if want_errno != result.errno:
                raise Failure(call, f"{call.name}() failed with another errno",
                              f"-1 {call.errno}", got)
        if result.mismatch is not None:
            raise Failure(call, f"{call.name}() {result.mismatch}")

    def _command(self, cmd: Command) -> None:
        try:
            self.commands.run(cmd.text)
        except CommandFailed as exc:
            raise Failure(cmd, str(exc)) from None

    def _code(self, code: Code) -> None:
        sock = self._info_socket()
        if sock is None:
            raise Failure(code, "no socket to take TCP_INFO from")
        try:
            run_code(code.text, sock.tcp_info(), self.options.personality)
        except CodeFailed as exc:
            raise Failure(code, str(exc)) from None

    def _info_socket(self) -> Any:
        sockets = self.process.sockets()
        mine = [d.sock for _fd, d in sockets if d.flow is self.flows.sut]
        if mine:
            return mine[-1]
        return sockets[-1][1].sock if sockets else None

def _format_result(result: CallResult) -> str:
    if result.value == -1 and result.errno:
        return f"-1 {errno_name(result.errno)}"
    return str(result.value)


def run_script(script: Script, options: RunOptions | None = None) -> Result:
    options = options or RunOptions()
    try:
        executor = Executor(script, options)
    except Failure as failure:
        return Result(script.path, failure.status, None, failure.message)
    return executor.run()
