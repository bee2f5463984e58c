# SPDX-License-Identifier: MIT
"""Start a guest: a command in a network namespace whose only link is a tap served by ustack.

::

    guest = spawn_guest(["curl", "http://example.org"], GuestNetwork())
    stack.create_nic(guest.tap, "guest")    # ustack's side of the tap
    guest.tap.start(loop)
    guest.start()                           # the command runs from here on
    status = await guest.wait()             # its exit status (128+N if killed by signal N)
    guest.close()

The namespaces and the tap are made by a child process (:mod:`.guest_child`):
it unshares a network namespace (and, when not root, a user namespace mapping
the caller to root inside, user_namespaces(7)), or joins an existing one with
setns(2); it creates the tap there (the device belongs to the namespace it was
created in) and hands its fd to this process over a socketpair with
``SCM_RIGHTS`` (unix(7)). That child then waits for :meth:`Guest.start` and
execs the command, so the guest's pid is our direct child and its exit status
is the command's own.

The network namespace lives as long as something holds it: the command (and
anything it leaves running) and the tap fd held here (a tun file pins the
namespace it was opened in). :meth:`Guest.close` closes the tap, so once the
command is gone, so are the namespace, the tap and the private mounts.

Call :func:`spawn_guest` from synchronous code or through ``run_in_executor``:
it blocks for the child's set-up (a few hundred milliseconds).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from types import TracebackType
from typing import IO, Any

import ustack
from ustack.forward.config import GuestNetwork
from ustack.forward.guest_child import FDS_PER_MESSAGE, GO, MAX_MESSAGE, GuestSpec
from ustack.forward.guest_errors import GuestError, from_report
from ustack.forward.loopback_ports import LoopbackSocket, to_ranges
from ustack.link.tap import IFNAMSIZ, MAX_MTU, MIN_MTU, TapEndpoint

__all__ = ["Guest", "GuestError", "spawn_guest"]

log = logging.getLogger(__name__)

Stdio = int | IO[Any] | None
#: the child's bootstrap: find this very ustack whatever the command's environment says
_BOOTSTRAP = ("import sys; sys.path.insert(0, {root!r}); "
              "from ustack.forward.guest_child import main; sys.exit(main())")
SETUP_TIMEOUT = 30.0


def _default_shell(env: dict[str, str] | None) -> list[str]:
    shell = (env if env is not None else os.environ).get("SHELL") or "/bin/sh"
    return [shell]


def exit_status(returncode: int) -> int:
    """Popen's returncode as a shell reports it: 128+N for a death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class Guest:
    """A started guest: its pid, ustack's side of its tap, and its exit status."""

    def __init__(self, proc: subprocess.Popen[bytes], control: socket.socket, tap: TapEndpoint,
                 guest_mac: bytes, warnings: list[str],
                 loopback: list[LoopbackSocket] | None = None) -> None:
        self._proc = proc
        self._control: socket.socket | None = control
        self.pid = proc.pid
        #: ustack's side of the tap (a LinkEndpoint); closed by :meth:`close`
        self.tap = tap
        #: the kernel side's MAC address inside the guest
        self.guest_mac = guest_mac
        self.warnings = warnings
        #: the -T/-U sockets bound on the guest's loopback (for a LoopbackForwarder)
        self.loopback: list[LoopbackSocket] = loopback or []
        self._pidfd = -1
        try:
            # pidfd_open(2): readable once the process has terminated (Linux 5.3)
            self._pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            pass
        self._waiter: asyncio.Future[int] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<Guest pid={self.pid} tap={self.tap.name!r} returncode={self.returncode}>"

    @property
    def stdin(self) -> IO[bytes] | None:
        """The command's stdin when spawned with ``stdin=subprocess.PIPE``."""
        return self._proc.stdin

    @property
    def stdout(self) -> IO[bytes] | None:
        """The command's stdout when spawned with ``stdout=subprocess.PIPE``."""
        return self._proc.stdout

    @property
    def netns_path(self) -> str:
        """The guest's network namespace, while it runs (for nsenter(1) or setns(2))."""
        return f"/proc/{self.pid}/ns/net"

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Let the command run (call once ustack serves the tap)."""
        if self._control is None:
            raise RuntimeError("the guest was already started or closed")
        control, self._control = self._control, None
        try:
            control.send(GO)
        except OSError:
            pass  # the child died meanwhile: wait() tells
        finally:
            control.close()

    @property
    def returncode(self) -> int | None:
        """The command's exit status (128+N if killed by signal N); None while it runs."""
        code = self._proc.poll()
        return None if code is None else exit_status(code)

    def poll(self) -> int | None:
        return self.returncode

    async def wait(self) -> int:
        """Wait for the command to end without blocking the loop; returns its exit status."""
        code = self.returncode
        if code is not None:
            return code
        loop = asyncio.get_running_loop()
        if self._waiter is None or self._waiter.done() or self._waiter.get_loop() is not loop:
            self._waiter = self._watch(loop)
        return await asyncio.shield(self._waiter)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[int]:
        future: asyncio.Future[int] = loop.create_future()
        if self._pidfd < 0:  # no pidfd: poll
            async def poll() -> None:
                while (code := self.returncode) is None:
                    await asyncio.sleep(0.05)
                if not future.done():
                    future.set_result(code)
            loop.create_task(poll())
            return future
        pidfd = self._pidfd

        def ready() -> None:
            code = self.returncode
            if code is None:
                return
            loop.remove_reader(pidfd)
            if not future.done():
                future.set_result(code)

        loop.add_reader(pidfd, ready)
        future.add_done_callback(lambda _f: loop.remove_reader(pidfd))
        return future

    def wait_sync(self, timeout: float | None = None) -> int:
        """Block until the command ends; raises TimeoutError after ``timeout`` seconds."""
        try:
            return exit_status(self._proc.wait(timeout))
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"the guest (pid {self.pid}) still runs after {timeout} s"
                               ) from None

    def send_signal(self, sig: int) -> None:
        """Signal the command (by its pid, only while it is our unreaped child)."""
        self._proc.send_signal(sig)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.send_signal(sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def close(self) -> None:
        """Kill the command if it still runs, reap it, close the tap and the control socket."""
        if self._closed:
            return
        self._closed = True
        if self._control is not None:
            self._control.close()  # the child, if still waiting, exits on EOF
            self._control = None
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        for item in self.loopback:
            item.sock.close()
        self.tap.close()

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def spawn_guest(argv: list[str] | None, net: GuestNetwork, *, tap_name: str = "tap0",
                mtu: int | None = None, offload: bool = True, userns: bool | None = None,
                netns: str | None = None, configure: bool = True,
                resolv_conf: bool | None = None, env: dict[str, str] | None = None,
                cwd: str | None = None, stdin: Stdio = None, stdout: Stdio = None,
                stderr: Stdio = None, timeout: float = SETUP_TIMEOUT,
                loopback_tcp: list[int] | None = None, loopback_udp: list[int] | None = None,
                die_with_parent: bool | None = None) -> Guest:
    """Start ``argv`` (default: ``$SHELL`` or /bin/sh) in a guest network namespace.

    - ``net``: addresses and routes given to the tap when ``configure`` (guest4/prefix,
      guest6/prefix without DAD, default routes via gateway4 and gateway6).
    - ``mtu``: the tap's MTU on both sides (default ``net.mtu``).
    - ``userns``: also create a user namespace mapping the caller to root (default:
      only when not root). With ``netns``: join the user namespace that owns it.
    - ``netns``: join this existing namespace (a name under /run/netns or a path)
      instead of creating one; the command runs inside it.
    - ``resolv_conf``: bind a resolv.conf naming the gateways over /etc/resolv.conf in a
      private mount namespace (default: when ``configure``).
    - ``env``/``cwd``/``stdin``/``stdout``/``stderr``: for the command.
    - ``loopback_tcp``/``loopback_udp``: guest ports to bind on the guest's 127.0.0.1
      and ::1 (for the families ``net`` enables), returned in :attr:`Guest.loopback`
      for a :class:`~ustack.forward.loopback_ports.LoopbackForwarder` (``-T``/``-U``).
    - ``die_with_parent``: the command is killed (SIGKILL) when the thread that called
      this dies (prctl(2) PR_SET_PDEATHSIG follows the creating *thread*), so that the
      guest never outlives ustack. Default: only when called from the main thread.

    The command does not run until :meth:`Guest.start`. Raises a
    :class:`~ustack.forward.guest_errors.GuestError` subclass (one-line message,
    ``exit_status`` for a CLI) when the guest cannot be set up.
    """
    if not tap_name or len(tap_name.encode()) >= IFNAMSIZ or "/" in tap_name \
            or any(c.isspace() for c in tap_name):
        raise ValueError(f"bad interface name {tap_name!r}: 1 to {IFNAMSIZ - 1} bytes, "
                         "no '/' or spaces")
    if mtu is None:
        mtu = net.mtu
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise ValueError(f"tap MTU {mtu} outside {MIN_MTU}..{MAX_MTU}")
    if userns is None:
        userns = os.geteuid() != 0
    if resolv_conf is None:
        resolv_conf = configure
    argv = list(argv) if argv else _default_shell(env)
    if die_with_parent is None:
        die_with_parent = threading.current_thread() is threading.main_thread()
    spec = GuestSpec(
        argv=argv, env=dict(env) if env is not None else None, cwd=cwd, tap_name=tap_name,
        mtu=mtu, userns=userns, netns=netns, configure=configure, resolv_conf=resolv_conf,
        guest4=net.guest4, prefix4=net.prefix4, gateway4=net.gateway4, guest6=net.guest6,
        prefix6=net.prefix6, gateway6=net.gateway6, nameservers=net.nameservers(),
        domain=net.domain, ipv4=net.ipv4, ipv6=net.ipv6, loopback_tcp=to_ranges(loopback_tcp or []),
        loopback_udp=to_ranges(loopback_udp or []),
        parent_pid=os.getpid() if die_with_parent else 0)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(ustack.__file__)))
        proc = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP.format(root=root), str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=stdin, stdout=stdout, stderr=stderr)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    try:
        return _handshake(proc, ours, spec, tap_name, mtu, offload, timeout)
    except BaseException:
        ours.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise


def _handshake(proc: subprocess.Popen[bytes], sock: socket.socket, spec: GuestSpec,
               tap_name: str, mtu: int, offload: bool, timeout: float) -> Guest:
    sock.settimeout(timeout)
    try:
        sock.send(spec.to_json())
    except OSError as exc:
        if exc.errno == errno.EMSGSIZE:
            raise GuestError(errno.EMSGSIZE, "the guest's set-up is too large to pass to it: "
                             "trim its environment") from None
        raise GuestError(exc.errno or errno.EIO, f"the guest child is gone: {exc}") from None
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 1)
    except TimeoutError:
        raise GuestError(errno.ETIMEDOUT, f"the guest child did not report within {timeout} s"
                         ) from None
    fd = fds[0] if fds else -1
    loopback: list[LoopbackSocket] = []
    try:
        if not data:
            status = proc.wait()
            raise GuestError(errno.EIO, "the guest child exited with status "
                             f"{exit_status(status)} before creating the tap (see its stderr)")
        report = json.loads(data)
        if not report.get("ok"):
            raise from_report(str(report.get("kind")), int(report.get("errno") or 0),
                              str(report.get("message")))
        if fd < 0:
            raise GuestError(errno.EIO, "the guest child reported no tap fd")
        loopback = _receive_loopback(sock, int(report.get("loopback", 0)))
        tap = TapEndpoint(fd, name=str(report.get("ifname", tap_name)), mtu=mtu,
                          offload=offload)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        for item in loopback:
            item.sock.close()
        raise
    sock.settimeout(None)
    warnings = [str(w) for w in report.get("warnings", [])]
    for warning in warnings:
        log.warning("guest: %s", warning)
    return Guest(proc, sock, tap, bytes.fromhex(str(report.get("mac", ""))), warnings, loopback)


def _receive_loopback(sock: socket.socket, count: int) -> list[LoopbackSocket]:
    """The ``count`` loopback sockets the child sends after its report, in batches."""
    received: list[LoopbackSocket] = []
    try:
        while len(received) < count:
            data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, FDS_PER_MESSAGE)
            if not data:
                raise GuestError(errno.EIO, "the guest child exited while passing the -T/-U "
                                 "sockets (see its stderr)")
            described = json.loads(data).get("loopback", [])
            if len(described) != len(fds):
                for fd in fds:
                    os.close(fd)
                raise GuestError(errno.EIO, "the guest child sent loopback sockets it did "
                                 "not describe")
            received += [LoopbackSocket(str(proto), int(version), int(port),
                                        socket.socket(fileno=fd))
                         for (proto, version, port), fd in zip(described, fds, strict=True)]
    except BaseException:
        for item in received:
            item.sock.close()
        raise
    return received
