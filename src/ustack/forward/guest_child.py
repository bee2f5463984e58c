# SPDX-License-Identifier: MIT
"""The guest child: a fresh interpreter that becomes the guest command.

:func:`ustack.forward.guest.spawn_guest` starts ``python -c ... main()`` with one
end of an ``AF_UNIX``/``SOCK_SEQPACKET`` socketpair. A new interpreter (rather
than a bare fork) is single-threaded whatever the parent runs, which unshare(2)
needs for ``CLONE_NEWUSER`` and setns(2) for joining a user namespace. The
conversation, one message each:

1. parent -> child: the :class:`GuestSpec` as JSON;
2. the child enters the namespaces, creates and configures the tap, binds the
   ``-T``/``-U`` sockets on the guest's loopback (:mod:`.loopback_ports`), then
   child -> parent: ``{"ok": true, ...}`` with the tap fd attached as
   ``SCM_RIGHTS`` ancillary data (unix(7)), or ``{"ok": false, "kind": ...}``;
   the report counts the loopback sockets, which follow in messages of at most
   :data:`FDS_PER_MESSAGE` fds (the kernel's SCM_MAX_FD is 253), each message
   describing its own (protocol, IP version, port);
3. parent -> child: ``go`` once ustack serves the tap (any other message or
   EOF: the child exits with status 125);
4. the child execs the command in place (same pid, so the parent's waitpid(2)
   sees the command's own exit status). If exec fails it exits 127 (not found)
   or 126 (not executable), as a shell does.

The guest does not outlive ustack: the child asks for SIGKILL when its parent
dies (prctl(2) ``PR_SET_PDEATHSIG``), first thing and again right before the
exec, and exits at once if the parent is already gone (``parent_pid``).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from ustack.forward import guest_config, guest_ns
from ustack.forward.guest_errors import (
    CommandNotExecutableError,
    CommandNotFoundError,
    GuestError,
    TunError,
)
from ustack.forward.loopback_ports import LoopbackSocket, from_ranges, open_loopback_sockets

SETUP_FAILED = 125  # like env(1) and chroot(1): the wrapper itself failed
MAX_MESSAGE = 1 << 20
GO = b"go"
FDS_PER_MESSAGE = 250


@dataclass
class GuestSpec:
    """Everything the child needs; sent as JSON (no pickle across the privilege line)."""

    argv: list[str]
    env: dict[str, str] | None
    cwd: str | None
    tap_name: str
    mtu: int
    userns: bool
    netns: str | None
    configure: bool
    resolv_conf: bool
    guest4: str
    prefix4: int
    gateway4: str
    guest6: str
    prefix6: int
    gateway6: str
    nameservers: list[str]
    domain: str
    ipv4: bool = True
    ipv6: bool = True
    #: guest loopback ports for -T (TCP) and -U (UDP), as [first, last] runs
    loopback_tcp: list[list[int]] = field(default_factory=list)
    loopback_udp: list[list[int]] = field(default_factory=list)
    #: the pid of the process to die with (0: do not)
    parent_pid: int = 0

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> GuestSpec:
        return cls(**json.loads(data))


def _tap_error(exc: OSError) -> GuestError:
    code = exc.errno or errno.EIO
    if code == errno.ENOENT:
        return TunError(code, "/dev/net/tun is missing: load the tun module (modprobe tun) "
                        "or pass the device into the container (--device /dev/net/tun)")
    if code in (errno.EACCES, errno.EPERM) and "TUNSETIFF" not in str(exc):
        return TunError(code, "cannot open /dev/net/tun (permission denied): it must be "
                        "readable and writable by your user (mode 0666 is the usual "
                        "default), or run as root")
    return TunError(code, str(exc))


def resolve_command(argv0: str, env: dict[str, str]) -> None:
    """Fail early, as a shell would, if ``argv0`` cannot be run (checked inside the guest)."""
    if "/" in argv0:
        path: str | None = argv0
        if not os.path.exists(argv0):
            path = None
    else:
        path = shutil.which(argv0, path=env.get("PATH", os.defpath))
        if path is None:
            raise CommandNotFoundError(errno.ENOENT, f"{argv0}: command not found in the "
                                       "guest's PATH: check the name or give a full path")
    if path is None:
        raise CommandNotFoundError(errno.ENOENT, f"{argv0}: no such file: check the path")
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise CommandNotExecutableError(errno.EACCES, f"{argv0}: not an executable file: "
                                        "check its permissions (chmod +x)")


def prepare(spec: GuestSpec) -> tuple[int, list[LoopbackSocket], dict[str, Any]]:
    """Enter the namespaces, create (and configure) the tap, bind the loopback sockets;
    returns (tap fd, loopback sockets, report)."""
    warnings: list[str] = []
    if spec.netns is None:
        guest_ns.enter_new(userns=spec.userns, mountns=spec.resolv_conf)
        guest_config.loopback_up()
    else:
        guest_ns.enter_existing(spec.netns, userns=spec.userns, mountns=spec.resolv_conf)
        if spec.configure:
            guest_config.loopback_up()
    if spec.resolv_conf:
        guest_ns.private_mounts()
        warning = guest_config.install_resolv_conf(
            guest_config.resolv_conf_text(spec.nameservers, spec.domain))
        if warning:
            warnings.append(warning)
    if spec.cwd is not None:
        try:
            os.chdir(spec.cwd)
        except OSError as exc:
            raise GuestError(exc.errno or errno.ENOENT,
                             f"cannot change to directory {spec.cwd!r}: {exc.strerror}") from None
    env = spec.env if spec.env is not None else dict(os.environ)
    resolve_command(spec.argv[0], env)

    from ustack.link.tap import open_tap

    versions = [v for v, on in ((4, spec.ipv4), (6, spec.ipv6)) if on]
    loopback = open_loopback_sockets(from_ranges(spec.loopback_tcp),
                                     from_ranges(spec.loopback_udp), versions)
    try:
        fd, name = open_tap(spec.tap_name)
    except OSError as exc:
        for item in loopback:
            item.sock.close()
        raise _tap_error(exc) from None
    try:
        if spec.configure:
            guest_config.configure_tap(
                name, spec.mtu, guest4=spec.guest4 if spec.ipv4 else None, prefix4=spec.prefix4,
                gateway4=spec.gateway4, guest6=spec.guest6 if spec.ipv6 else None,
                prefix6=spec.prefix6, gateway6=spec.gateway6)
        mac = guest_config.link_address(name)
    except BaseException:
        os.close(fd)
        for item in loopback:
            item.sock.close()
        raise
    return fd, loopback, {"ok": True, "ifname": name, "mac": mac.hex(), "warnings": warnings,
                          "loopback": len(loopback)}


def _reset_signals() -> None:
    """The command starts with default dispositions and an empty mask (as after a shell's
    fork). Python ignores SIGPIPE and SIGXFSZ; a parent may have ignored SIGINT. A
    SIGHUP ignored by nohup(1) stays ignored."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGHUP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass


def exec_command(spec: GuestSpec) -> NoReturn:
    """execve(2) the command; on failure exit 127 or 126 with a shell-like message."""
    _reset_signals()
    env = spec.env if spec.env is not None else dict(os.environ)
    try:
        os.execvpe(spec.argv[0], spec.argv, env)
    except OSError as exc:
        status = 127 if exc.errno == errno.ENOENT else 126
        os.write(2, f"ustack: {spec.argv[0]}: {exc.strerror}\n".encode())
        os._exit(status)


def _send(sock: socket.socket, report: dict[str, Any], fds: list[int]) -> None:
    socket.send_fds(sock, [json.dumps(report).encode()], fds)


def _die_with_parent(spec: GuestSpec) -> None:
    """SIGKILL when ustack dies; exit now if it already has (prctl(2))."""
    if spec.parent_pid and not guest_ns.die_with_parent(spec.parent_pid, signal.SIGKILL):
        os._exit(SETUP_FAILED)


def main() -> int:
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.set_inheritable(False)  # the command must not inherit it
    try:
        spec = GuestSpec.from_json(sock.recv(MAX_MESSAGE))
    except (OSError, ValueError, TypeError):
        return SETUP_FAILED
    try:
        _die_with_parent(spec)
        fd, loopback, report = prepare(spec)
    except GuestError as exc:
        _send(sock, {"ok": False, "kind": type(exc).__name__, "errno": exc.errno,
                     "message": exc.message}, [])
        return SETUP_FAILED
    except Exception as exc:  # a bug: report it rather than die silently
        _send(sock, {"ok": False, "kind": "GuestError", "errno": errno.EIO,
                     "message": f"guest set-up failed: {exc!r}"}, [])
        return SETUP_FAILED
    try:
        _send(sock, report, [fd])
        for first in range(0, len(loopback), FDS_PER_MESSAGE):
            batch = loopback[first:first + FDS_PER_MESSAGE]
            _send(sock, {"loopback": [item.describe() for item in batch]},
                  [item.sock.fileno() for item in batch])
    except OSError:
        return SETUP_FAILED
    finally:
        os.close(fd)  # the parent holds the tap now; the device lives as long as its fd
        for item in loopback:
            item.sock.close()  # ... and the loopback sockets
    try:
        go = sock.recv(16)
    except OSError:
        return SETUP_FAILED
    if go != GO:
        return SETUP_FAILED
    _die_with_parent(spec)  # again: a change of credentials may have cleared it
    exec_command(spec)


if __name__ == "__main__":
    sys.exit(main())
