# SPDX-License-Identifier: MIT
"""Backtick commands, interpreted rather than run in a shell: ``sysctl`` (onto the
stack's TCP settings), ``sockstat`` piped into ``grep`` (the sockets of the
script's process and their states, as FreeBSD prints them) and ``tcpdrop -s``.
Any other command makes the script unsupported.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from ustack.testing.packetdrill.calls import Unsupported
from ustack.testing.packetdrill.syscalls import Process
from ustack.transport.tcp import sysctl
from ustack.transport.tcp.endpoint import TCPEndpoint
from ustack.transport.tcp.protocol import TCPProtocol
from ustack.transport.tcp.state import State


class CommandFailed(Exception):
    """The command ran and exited non-zero."""


#: FreeBSD's names for the states (sys/netinet/tcp_fsm.h tcpstates[])
FREEBSD_STATES = {
    State.CLOSED: "CLOSED", State.LISTEN: "LISTEN", State.SYN_SENT: "SYN_SENT",
    State.SYN_RECEIVED: "SYN_RCVD", State.ESTABLISHED: "ESTABLISHED",
    State.CLOSE_WAIT: "CLOSE_WAIT", State.FIN_WAIT_1: "FIN_WAIT_1", State.CLOSING: "CLOSING",
    State.LAST_ACK: "LAST_ACK", State.FIN_WAIT_2: "FIN_WAIT_2", State.TIME_WAIT: "TIME_WAIT",
}


class Commands:
    def __init__(self, protocol: TCPProtocol, process: Process) -> None:
        self.protocol = protocol
        self.process = process
        self.programs: dict[str, Callable[[list[str], list[str]], list[str]]] = {
            "sysctl": self._sysctl, "sockstat": self._sockstat, "grep": self._grep,
            "tcpdrop": self._tcpdrop,
        }

    def run(self, text: str) -> None:
        """Run a pipeline; raises CommandFailed when its last command fails."""
        lines: list[str] = []
        parts = text.split("|")
        for i, part in enumerate(parts):
            try:
                argv = shlex.split(part)
            except ValueError as exc:
                raise Unsupported(f"command {text!r}") from exc
            if not argv or argv[0] not in self.programs:
                raise Unsupported(f"command {text!r}")
            try:
                lines = self.programs[argv[0]](argv[1:], lines)
            except _StatusOne as exc:  # only the last command's status counts (no pipefail)
                if i == len(parts) - 1:
                    raise CommandFailed(f"`{text}` exited with status 1") from None
                lines = exc.output

    # --- sysctl --------------------------------------------------------------------------------

    def _sysctl(self, args: list[str], _stdin: list[str]) -> list[str]:
        assignments = [a for a in args if not a.startswith("-")]
        if not assignments or any("=" not in a for a in assignments):
            raise Unsupported(f"sysctl {' '.join(args)} (only sysctl [-w] name=value)")
        for item in assignments:
            name, _, value = item.partition("=")
            try:
                sysctl.apply(self.protocol.config, name, value)
            except sysctl.UnknownSysctl as exc:
                raise Unsupported(f"sysctl {name} (not mapped onto ustack settings)") from exc
            except sysctl.UnsupportedSysctl as exc:
                raise Unsupported(f"sysctl {name}={value}: {exc}") from exc
        return []

    # --- sockstat | grep --------------------------------------------------------------------------

    def _sockstat(self, args: list[str], _stdin: list[str]) -> list[str]:
        families, port = {4, 6}, None
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in ("-4", "-6"):
                families = {int(arg[1])} if families == {4, 6} else families | {int(arg[1])}
            elif arg == "-P":
                i += 1
                if args[i] != "tcp":
                    raise Unsupported(f"sockstat -P {args[i]}")
            elif arg == "-p":
                i += 1
                port = int(args[i])
            elif arg not in ("-s", "-l", "-c"):
                raise Unsupported(f"sockstat {arg}")
            i += 1
        out = ["USER     COMMAND    PID   FD PROTO  LOCAL ADDRESS         FOREIGN ADDRESS"
               "      PATH STATE   CONN STATE"]
        # the process's sockets, then connections no descriptor holds (embryonic ones,
        # closed ones lingering in TIME-WAIT): FreeBSD lists those with "?" owners
        owned: list[tuple[str, TCPEndpoint]] = [
            (f"root     packetdril 1000 {fd:>4}", desc.sock._ep)
            for fd, desc in self.process.sockets()]
        held = {id(ep) for _owner, ep in owned}
        owned += [("?        ?          ?       ?", ep) for ep in self.protocol.connections
                  if id(ep) not in held]
        for owner, ep in owned:
            family = 4 if ep.size == 4 else 6
            if family not in families or (port is not None and port not in (
                    ep.local_port, ep.remote_port)):
                continue
            local = _addr(ep.local_addr, ep.local_port)
            remote = _addr(ep.remote_addr, ep.remote_port) if ep.remote_port else "*:*"
            out.append(f"{owner} tcp{family}   {local:<21} {remote:<21} "
                       f"{FREEBSD_STATES[ep.state]}")
        return out

    @staticmethod
    def _grep(args: list[str], stdin: list[str]) -> list[str]:
        count = invert = False
        pattern = None
        for arg in args:
            if arg == "-c":
                count = True
            elif arg == "-v":
                invert = True
            elif arg.startswith("-"):
                raise Unsupported(f"grep {arg}")
            else:
                pattern = arg
        if pattern is None:
            raise Unsupported("grep without a pattern")
        rx = re.compile(pattern)
        matched = [line for line in stdin if bool(rx.search(line)) != invert]
        if count:
            if not matched:
                raise _StatusOne(["0"])
            return [str(len(matched))]
        if not matched:
            raise _StatusOne([])
        return matched

    # --- tcpdrop -------------------------------------------------------------------------------

    def _tcpdrop(self, args: list[str], _stdin: list[str]) -> list[str]:
        if len(args) != 2 or args[0] != "-s":
            raise Unsupported(f"tcpdrop {' '.join(args)} (only tcpdrop -s STATE)")
        wanted = [s for s, name in FREEBSD_STATES.items() if name == args[1]]
        if not wanted:
            raise CommandFailed(f"tcpdrop: unknown state {args[1]}")
        for ep in list(self.protocol.connections):
            if ep.state is wanted[0]:
                if ep.state is State.TIME_WAIT:
                    ep.terminate(0)
                else:
                    ep.abort()
        return []


class _StatusOne(CommandFailed):
    """grep found nothing: exit status 1 (fatal only at the end of the pipeline)."""

    def __init__(self, output: list[str]) -> None:
        super().__init__("grep: no match")
        self.output = output


def _addr(addr: bytes, port: int) -> str:
    import ipaddress

    return f"{ipaddress.ip_address(addr)}:{port}" if any(addr) else f"*:{port}"
