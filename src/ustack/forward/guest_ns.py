# SPDX-License-Identifier: MIT
"""The namespace system calls the guest child makes before it creates its tap.

Python 3.11 has no ``os.unshare``/``os.setns``, so they go through libc with
ctypes. Everything here runs in the freshly started guest child, which is
single-threaded: unshare(2) refuses ``CLONE_NEWUSER`` and setns(2) refuses to
join a user namespace from a multithreaded process.

- :func:`enter_new` makes new network and mount namespaces, and optionally a
  user namespace whose only mapping is the caller's uid/gid to root
  (user_namespaces(7), "User and group ID mappings": an unprivileged process may
  write one line mapping its own effective id, and must write ``deny`` to
  ``/proc/self/setgroups`` before it may write ``gid_map``).
- :func:`enter_existing` joins a network namespace by name or path (setns(2)),
  first joining the user namespace that owns it when asked (``NS_GET_USERNS``,
  ioctl_ns(2)), as ``nsenter --user --net`` does.
- :func:`private_mounts` and :func:`bind_file` give the guest its own
  /etc/resolv.conf without touching the host's (mount_namespaces(7): with
  private propagation, mounts made here are not seen anywhere else).

Errors are :class:`~ustack.forward.guest_errors.GuestError` subclasses whose
message says what to do.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os

from ustack.forward.guest_errors import (
    GuestError,
    NamespaceNotFoundError,
    NamespacePermissionError,
    UserNamespaceError,
)

# include/uapi/linux/sched.h
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
# include/uapi/linux/mount.h
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
# include/uapi/linux/nsfs.h: _IO(0xb7, 0x1)
NS_GET_USERNS = 0xB701

NETNS_DIRS = ("/run/netns", "/var/run/netns")  # where iproute2 keeps named namespaces

# include/uapi/linux/prctl.h
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    """setns(2): join the namespace ``fd`` refers to (``nstype`` checks its kind)."""
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    """mount(2) without filesystem data."""
    _check(_libc.mount(source.encode() if source is not None else None, target.encode(),
                       fstype.encode() if fstype is not None else None, flags, None),
           f"mount {target}")


def die_with_parent(parent_pid: int, sig: int) -> bool:
    """Have the kernel send ``sig`` to us when our parent dies (prctl(2) PR_SET_PDEATHSIG).

    prctl(2) advises checking the parent afterwards: if it died before the call, we
    were already re-parented and the signal will never come. Returns False then
    (the caller should exit). The setting survives execve(2) except of set-user-ID,
    set-group-ID or file-capability binaries, and is cleared by changes of the
    effective or filesystem ids, so it is set again right before the exec.
    """
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    return os.getppid() == parent_pid


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def map_to_root(uid: int, gid: int) -> None:
    """Map ``uid``/``gid`` of the parent user namespace to root in ours (user_namespaces(7))."""
    _write("/proc/self/setgroups", "deny")  # required before an unprivileged gid_map write
    _write("/proc/self/uid_map", f"0 {uid} 1\n")
    _write("/proc/self/gid_map", f"0 {gid} 1\n")


def enter_new(*, userns: bool, mountns: bool) -> None:
    """New network namespace (+ mount, + user namespace); the caller becomes root in it."""
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNET | (CLONE_NEWNS if mountns else 0)
    if userns:
        # user_namespaces(7): the other namespaces created in the same call are owned
        # by the new user namespace, so its root (us) may administer them
        try:
            unshare(CLONE_NEWUSER | flags)
        except OSError as exc:
            raise _userns_error(exc) from None
        try:
            map_to_root(uid, gid)
        except OSError as exc:
            raise UserNamespaceError(exc.errno or errno.EPERM,
                                     f"writing the user namespace's id maps failed ({exc}): "
                                     "user namespaces look restricted here; run as root"
                                     ) from None
        return
    try:
        unshare(flags)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise NamespacePermissionError(
                errno.EPERM, "creating a network namespace needs CAP_SYS_ADMIN: run as root "
                "or let ustack use a user namespace (the default when not root)") from None
        raise GuestError(exc.errno or errno.EIO, f"creating the guest namespaces: {exc}") from None


def _userns_error(exc: OSError) -> UserNamespaceError:
    """unshare(2) ERRORS for CLONE_NEWUSER, each with what to do about it."""
    code = exc.errno or errno.EPERM
    if code == errno.ENOSPC:
        why = "the limit of user namespaces is reached (sysctl user.max_user_namespaces is 0 " \
              "or used up): raise it, or run as root"
    elif code == errno.EPERM:
        why = "user namespaces are not permitted for unprivileged users here: enable them " \
              "(sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0, " \
              "kernel.apparmor_restrict_unprivileged_userns=0, or a seccomp policy that " \
              "allows unshare), or run as root"
    elif code == errno.EINVAL:
        why = "this kernel has no user namespaces (CONFIG_USER_NS) or the process is chrooted: " \
              "run as root"
    else:
        why = f"{os.strerror(code)}: run as root"
    return UserNamespaceError(code, f"cannot create a user namespace: {why}")


def netns_path(netns: str) -> str:
    """A name (``ip netns add NAME``) under /run/netns, or a path such as /proc/PID/ns/net."""
    if "/" in netns:
        return netns
    if not netns or netns in (".", ".."):
        raise NamespaceNotFoundError(errno.ENOENT, f"bad network namespace name {netns!r}")
    for directory in NETNS_DIRS:
        path = os.path.join(directory, netns)
        if os.path.exists(path):
            return path
    return os.path.join(NETNS_DIRS[0], netns)


def open_netns(netns: str) -> int:
    """An fd for the network namespace ``netns`` (name or path)."""
    path = netns_path(netns)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NamespaceNotFoundError(
            errno.ENOENT, f"network namespace {netns!r} not found ({path} does not exist): "
            "create it (ip netns add NAME) or pass a path like /proc/PID/ns/net") from None
    except PermissionError:
        raise NamespacePermissionError(
            errno.EACCES, f"cannot open network namespace {path}: permission denied: "
            "run as root or as the namespace's owner") from None


def _same_namespace(fd: int, own: str) -> bool:
    st, mine = os.fstat(fd), os.stat(own)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def enter_existing(netns: str, *, userns: bool, mountns: bool) -> None:
    """Join the network namespace ``netns`` (and its owning user namespace if ``userns``)."""
    fd = open_netns(netns)
    try:
        if userns:
            _join_owner(fd, netns)
        try:
            setns(fd, CLONE_NEWNET)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise NamespaceNotFoundError(errno.EINVAL, f"{netns_path(netns)} is not a "
                                             "network namespace") from None
            if exc.errno == errno.EPERM:
                raise NamespacePermissionError(
                    errno.EPERM, f"joining network namespace {netns!r} needs CAP_SYS_ADMIN "
                    "over it: run as root, or own its user namespace") from None
            raise GuestError(exc.errno or errno.EIO,
                             f"joining network namespace {netns!r}: {exc}") from None
    finally:
        os.close(fd)
    if mountns:
        try:
            unshare(CLONE_NEWNS)
        except OSError as exc:
            raise NamespacePermissionError(
                exc.errno or errno.EPERM, f"creating a mount namespace for the guest: {exc}: "
                "run as root, or pass configure=False to keep the host's resolv.conf") from None


def _join_owner(netns_fd: int, netns: str) -> None:
    """setns(2) into the user namespace owning ``netns_fd``, unless it is already ours."""
    try:
        owner = fcntl.ioctl(netns_fd, NS_GET_USERNS)
    except OSError as exc:
        if exc.errno == errno.EPERM:  # owned by an ancestor of our user namespace
            return
        raise GuestError(exc.errno or errno.EIO, f"finding the user namespace of {netns!r}: "
                         f"{exc}") from None
    try:
        if _same_namespace(owner, "/proc/self/ns/user"):
            return
        try:
            setns(owner, CLONE_NEWUSER)
        except OSError as exc:
            raise NamespacePermissionError(
                exc.errno or errno.EPERM, f"joining the user namespace that owns {netns!r} "
                f"failed ({os.strerror(exc.errno or errno.EPERM)}): run as root or as the "
                "user who created it") from None
    finally:
        os.close(owner)


def private_mounts() -> None:
    """Stop mount events from propagating back to the host (mount --make-rprivate /)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)


def bind_file(source: str, target: str) -> None:
    """Bind-mount the file ``source`` over ``target`` (both must exist)."""
    mount(source, target, None, MS_BIND)
