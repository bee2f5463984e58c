# SPDX-License-Identifier: MIT
"""Why a guest could not be started: one exception type per cause, one line that says what
to do, and the exit status a shell would give (``exit_status``).

The guest child classifies what went wrong and sends the class name with the
message; :func:`from_report` rebuilds the exception in the parent.
"""

from __future__ import annotations

import errno


class GuestError(OSError):
    """The guest could not be started; ``str(exc)`` is one line saying what to do."""

    #: the status a CLI should exit with (125: ustack's own failure, like env(1)/chroot(1))
    exit_status = 125

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TunError(GuestError):
    """/dev/net/tun is missing or not usable."""


class UserNamespaceError(GuestError):
    """User namespaces are not available to this user."""


class NamespaceNotFoundError(GuestError):
    """The network namespace to attach to does not exist (or is not one)."""


class NamespacePermissionError(GuestError):
    """Not allowed to create or join the namespace."""


class LinkSetupError(GuestError):
    """The tap could not be configured inside the namespace."""


class PortForwardError(GuestError):
    """A -T/-U port could not be bound on the guest's loopback."""


class CommandNotFoundError(GuestError):
    """The command does not exist (exit status 127, as in a shell)."""

    exit_status = 127


class CommandNotExecutableError(GuestError):
    """The command exists but cannot be run (exit status 126, as in a shell)."""

    exit_status = 126


_KINDS: dict[str, type[GuestError]] = {cls.__name__: cls for cls in (
    GuestError, TunError, UserNamespaceError, NamespaceNotFoundError, NamespacePermissionError,
    LinkSetupError, PortForwardError, CommandNotFoundError, CommandNotExecutableError)}


def from_report(kind: str, code: int, message: str) -> GuestError:
    """The exception the child described (an unknown ``kind`` becomes a GuestError)."""
    return _KINDS.get(kind, GuestError)(code or errno.EIO, message)
