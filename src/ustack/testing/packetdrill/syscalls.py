# SPDX-License-Identifier: MIT
"""The script's process: its file descriptors, and the system calls it makes on
ustack sockets (socket, bind, listen, accept, connect, read/write/send/recv,
close, shutdown, fcntl, getsockopt/setsockopt).

Sockets are driven non-blocking; a call on a blocking descriptor that cannot
complete raises :class:`WouldBlock` with a retry, and the executor advances the
virtual clock until the retry succeeds (the call "blocks"). Addresses written
``...`` are packetdrill's: the local address and bind port, the remote address
and connect port.
"""

from __future__ import annotations

import errno
import ipaddress
import socket as _socket
from collections.abc import Callable
from typing import Any

from ustack.testing.packetdrill.calls import (
    CallResult,
    FileDesc,
    Unsupported,
    WouldBlock,
    failed,
)
from ustack.testing.packetdrill.harness import Harness
from ustack.testing.packetdrill.lexer import ScriptError
from ustack.testing.packetdrill.mapping import Flows, FlowState
from ustack.testing.packetdrill.model import Syscall
from ustack.testing.packetdrill.sockopts import getsockopt, setsockopt
from ustack.testing.packetdrill.symbols import (
    SYMBOLS,
    Value,
    as_int,
    evaluate,
)
from ustack.waiter import ERROR, HANGUP, WRITABLE


class Process:
    def __init__(self, harness: Harness, flows: Flows, bind_port: int,
                 connect_port: int) -> None:
        self.h = harness
        self.flows = flows
        self.bind_port = bind_port
        self.connect_port = connect_port
        self.family = _socket.AF_INET if ":" not in harness.addrs.local else _socket.AF_INET6
        self.fds: dict[int, FileDesc] = {}
        self.handlers: dict[str, Callable[[Syscall, list[Value]], CallResult]] = {
            "socket": self._socket, "bind": self._bind, "listen": self._listen,
            "accept": self._accept, "connect": self._connect, "close": self._close,
            "shutdown": self._shutdown, "fcntl": self._fcntl, "read": self._read,
            "recv": self._read, "recvfrom": self._read, "write": self._write,
            "send": self._write, "sendto": self._write, "getsockopt": self._getsockopt,
            "setsockopt": self._setsockopt,
        }

    def call(self, call: Syscall) -> CallResult:
        handler = self.handlers.get(call.name)
        if handler is None:
            raise Unsupported(f"system call {call.name}()")
        args = [evaluate(a, call.line) for a in call.args]
        return handler(call, args)

    # --- helpers -------------------------------------------------------------------------------

    def _fd(self, call: Syscall, args: list[Value]) -> FileDesc | None:
        if not args:
            raise ScriptError(call.line, f"{call.name}() needs a file descriptor")
        return self.fds.get(as_int(args[0], call.line, "fd"))

    def _new_fd(self, call: Syscall, desc: FileDesc) -> int:
        want = call.result if isinstance(call.result, int) and call.result >= 0 else None
        fd = want if want is not None and want not in self.fds else \
            next(n for n in range(3, 1 << 16) if n not in self.fds)
        self.fds[fd] = desc
        return fd

    def _run(self, desc: FileDesc, op: Callable[[], CallResult],
             blocked_errno: int = errno.EAGAIN) -> CallResult:
        """Run ``op`` (non-blocking); on a blocking descriptor, a would-block is a wait."""
        try:
            return op()
        except BlockingIOError:
            if desc.nonblock:
                return CallResult(-1, blocked_errno)
            raise WouldBlock(lambda: self._run(desc, op, blocked_errno)) from None
        except OSError as exc:
            return failed(exc)

    def local_sockaddr(self) -> tuple[str, int]:
        return self.h.addrs.local, self.bind_port

    @staticmethod
    def _sockaddr(value: Value, default: tuple[str, int], line: int) -> tuple[str, int]:
        """``...`` (packetdrill's default address), or a sockaddr structure:
        ``{sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.0.2.1")}``."""
        if value is None:
            return default
        if isinstance(value, dict):
            port = next((v for k, v in value.items() if k.endswith("port")), None)
            addr = next((v for k, v in value.items() if k.endswith("addr")), None)
            if isinstance(port, int) and isinstance(addr, bytes):
                return str(ipaddress.ip_address(addr)), port
        raise ScriptError(line, "a socket address is '...' or {sa_family=..., sin_port=..., "
                          "sin_addr=...}")

    # --- sockets -------------------------------------------------------------------------------

    def _socket(self, call: Syscall, args: list[Value]) -> CallResult:
        kind = args[1] if len(args) > 1 else None
        if kind not in (None, _socket.SOCK_STREAM):
            raise Unsupported("sockets other than SOCK_STREAM")
        family = args[0] if isinstance(args[0], int) else self.family
        sock = self.h.stack.socket(family, _socket.SOCK_STREAM)
        sock.settimeout(0)
        flow = self.flows.new()
        return CallResult(self._new_fd(call, FileDesc(sock, flow)))

    def _bind(self, call: Syscall, args: list[Value]) -> CallResult:
        desc = self._fd(call, args)
        if desc is None:
            return CallResult(-1, errno.EBADF)
        addr = self._sockaddr(args[1] if len(args) > 1 else None, self.local_sockaddr(),
                              call.line)

        def op() -> CallResult:
            desc.sock.bind(addr)
            host, port = desc.sock.getsockname()[:2]
            desc.flow.live_local = (_packed(host), port)
            return CallResult(0)

        return self._run(desc, op)

    def _listen(self, call: Syscall, args: list[Value]) -> CallResult:
        desc = self._fd(call, args)
        if desc is None:
            return CallResult(-1, errno.EBADF)
        backlog = as_int(args[1], call.line, "backlog") if len(args) > 1 else 128

        def op() -> CallResult:
            desc.sock.listen(backlog)
            desc.flow.state = FlowState.LISTENING
            return CallResult(0)

        return self._run(desc, op)

    def _accept(self, call: Syscall, args: list[Value]) -> CallResult:
        desc = self._fd(call, args)
        if desc is None:
            return CallResult(-1, errno.EBADF)

        def op() -> CallResult:
            sock, peer = desc.sock.accept()
            sock.settimeout(0)
            host, port = peer[:2]
            flow = next((f for f in self.flows.all if f.live_remote == (_packed(host), port)),
                        None) or self.flows.new(FlowState.PASSIVE_SYNACK_ACKED, under_test=False)
            return CallResult(self._new_fd(call, FileDesc(sock, flow)))

        return self._run(desc, op)

    def _connect(self, call: Syscall, args: list[Value]) -> CallResult:
        desc = self._fd(call, args)
        if desc is None:
            return CallResult(-1, errno.EBADF)
        host, port = self._sockaddr(args[1] if len(args) > 1 else None,
                                    (self.h.addrs.remote, self.connect_port), call.line)
        flow = desc.flow
        if flow.state in (FlowState.INIT, FlowState.LISTENING):
            flow.state = FlowState.ACTIVE_CONNECTING
            flow.live_remote = (_packed(host), port)
        sock = desc.sock
        try:
            sock.connect((host, port))
        except BlockingIOError as exc:
            if desc.nonblock or exc.errno != errno.EINPROGRESS:
                return CallResult(-1, exc.errno or errno.EINPROGRESS)
            raise WouldBlock(lambda: self._connected(sock)) from None
        except OSError as exc:
            return failed(exc)
        return CallResult(0)

    @staticmethod
    def _connected(sock: Any) -> CallResult:
        if not sock.readiness() & (WRITABLE | ERROR | HANGUP):
            raise WouldBlock(lambda: Process._connected(sock))
        err = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        return CallResult(-1, err) if err else CallResult(0)

    def _close(self, call: Syscall, args: list[Value]) -> CallResult:
        fd = as_int(args[0], call.line, "fd") if args else -1
        desc = self.fds.pop(fd, None)
        if desc is None:
            return CallResult(-1, errno.EBADF)
        desc.sock.close()
        return CallResult(0)

    def _shutdown(self, call: Syscall, args: list[Value]) -> CallResult:
        desc = self._fd(call, args)
        if desc is None:
            return CallResult(-1, errno.EBADF)
        how = as_int(args[1], call.line, "how")

        def op() -> CallResult:
            desc.sock.shutdown(how)
            return CallResult(0)

        return self._run(desc, op)

    def _fcntl(self, call: Syscall, args: list[Value]) -> CallResult:
        desc = self._fd(call, args)
        if desc is None:
            return CallResult(-1, errno.EBADF)
        cmd = as_int(args[1], call.line, "fcntl command")
        if cmd == SYMBOLS["F_GETFL"]:
            return CallResult(SYMBOLS["O_RDWR"] | (SYMBOLS["O_NONBLOCK"] if desc.nonblock
                                                   else 0))
        if cmd == SYMBOLS["F_SETFL"]:
            desc.nonblock = bool(as_int(args[2], call.line, "flags") & SYMBOLS["O_NONBLOCK"])
            return CallResult(0)
        if cmd in (SYMBOLS["F_GETFD"], SYMBOLS["F_SETFD"]):
            return CallResult(0)
        raise Unsupported(f"fcntl command {cmd}")

    # --- data ----------------------------------------------------------------------------------

    def _read(self, call: Syscall, args: list[Value]) -> CallResult:
        desc = self._fd(call, args)
        if desc is None:
            return CallResult(-1, errno.EBADF)
        size = as_int(args[2], call.line, "length")
        flags = as_int(args[3], call.line, "flags") if len(args) > 3 and args[3] is not None \
            else 0

        def op() -> CallResult:
            return CallResult(len(desc.sock.recv(size, flags & _socket.MSG_PEEK)))

        if flags & _socket.MSG_DONTWAIT:
            return self._run(FileDesc(desc.sock, desc.flow, True), op)
        return self._run(desc, op)

    def _write(self, call: Syscall, args: list[Value]) -> CallResult:
        desc = self._fd(call, args)
        if desc is None:
            return CallResult(-1, errno.EBADF)
        size = as_int(args[2], call.line, "length")
        done = 0

        def op() -> CallResult:
            nonlocal done
            while done < size:
                try:
                    done += desc.sock.send(bytes(size - done))
                except BlockingIOError:
                    if done and desc.nonblock:
                        break
                    raise
            return CallResult(done)

        return self._run(desc, op)

    # --- options (sockopts.py) ------------------------------------------------------------------

    def _getsockopt(self, call: Syscall, args: list[Value]) -> CallResult:
        desc = self._fd(call, args)
        return CallResult(-1, errno.EBADF) if desc is None else getsockopt(desc.sock, call, args)

    def _setsockopt(self, call: Syscall, args: list[Value]) -> CallResult:
        desc = self._fd(call, args)
        return CallResult(-1, errno.EBADF) if desc is None else setsockopt(desc.sock, call, args)

    # --- for commands and code blocks ----------------------------------------------------------

    def sockets(self) -> list[tuple[int, FileDesc]]:
        return sorted(self.fds.items())


def _packed(host: str) -> bytes:
    return ipaddress.ip_address(host.split("%")[0]).packed
