# SPDX-License-Identifier: MIT
"""Switchable TCP stacks ("TCP function blocks", as FreeBSD's tcp_functions).

A TCP stack decides how a connection detects and repairs loss and how it
schedules its sends; the state machine, the buffers and the scoreboard stay
with the connection, so a connection can change stacks mid-stream without
losing a byte. Stacks are registered by name, with aliases and a small
numeric id; the stack-wide default is :attr:`TCPConfig.tcp_stack` (FreeBSD's
net.inet.tcp.functions_default); a socket picks its own with the
TCP_FUNCTION_BLK option; accepted sockets inherit their listener's.

A stack may refuse a handoff (FreeBSD's tfb_tcp_handoff_ok): ``rack`` refuses
while the handshake is in progress (SACK is not yet known) and, when
``TCPConfig.rack_require_sack`` is set, for a peer without SACK. A setsockopt
that is refused fails with that errno and changes nothing; a connection whose
stack (chosen before connecting, or inherited) refuses it once established
falls back to the default stack.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ustack.transport.tcp import recovery as recovery_registry
from ustack.transport.tcp.recovery.base import LossRecovery
from ustack.transport.tcp.state import State

if TYPE_CHECKING:
    from ustack.transport.tcp.endpoint import TCPEndpoint
    from ustack.transport.tcp.sender import Sender

TCP_FUNCTION_BLK = 8192  # FreeBSD netinet/tcp.h
TCP_FUNCTION_ALIAS = 8193
TCP_FUNCTION_NAME_LEN_MAX = 32


class TCPStack:
    """The ``default`` stack: RFC 6675 SACK recovery (RFC 6582 NewReno without SACK),
    sends clocked by ACKs alone. It never refuses a connection."""

    name = "default"
    aliases: tuple[str, ...] = ("freebsd", "rfc6675")
    id = 0
    #: spread the burst a stretch or compressed ACK would release (see pacing.py)
    burst_mitigation = False

    def recovery_for(self, sender: Sender, sack: bool) -> LossRecovery:
        return recovery_registry.create("rfc6675" if sack else "newreno", sender)

    def handoff_ok(self, ep: TCPEndpoint) -> int:
        """0 when ``ep`` may run on this stack now, else the errno refusing it."""
        return 0

    def __repr__(self) -> str:
        return f"<TCPStack {self.name} #{self.id}>"


class RackStack(TCPStack):
    """RACK-TLP (RFC 8985) with PRR (RFC 6937) and burst mitigation, as FreeBSD's rack."""

    name = "rack"
    aliases = ("rack_tlp", "tcp_rack")
    id = 1
    burst_mitigation = True

    def recovery_for(self, sender: Sender, sack: bool) -> LossRecovery:
        # RACK needs SACK to learn what was delivered; without it, NewReno (RFC 6582)
        return recovery_registry.create("rack" if sack else "newreno", sender)

    def handoff_ok(self, ep: TCPEndpoint) -> int:
        state = ep.state
        if state in (State.CLOSED, State.LISTEN):
            return 0
        if state in (State.SYN_SENT, State.SYN_RECEIVED):
            return errno.EAGAIN  # whether the peer does SACK is not known yet
        if not ep.sack_enabled and ep.config.rack_require_sack:
            return errno.EINVAL
        return 0


_BY_NAME: dict[str, TCPStack] = {}
_BY_ID: dict[int, TCPStack] = {}
DEFAULT = TCPStack()


def register(stack: TCPStack) -> None:
    for name in (stack.name, *stack.aliases):
        _BY_NAME[name] = stack
    _BY_ID[stack.id] = stack


def get(key: str | int) -> TCPStack:
    """A stack by name, alias or numeric id (KeyError when there is none)."""
    stack = _BY_ID.get(key) if isinstance(key, int) else _BY_NAME.get(key)
    if stack is None:
        raise KeyError(f"unknown TCP stack {key!r}; have {', '.join(available())}")
    return stack


def available() -> list[str]:
    """Canonical names, by id."""
    return [s.name for _id, s in sorted(_BY_ID.items())]


def parse(value: int | bytes | str) -> TCPStack:
    """A TCP_FUNCTION_BLK value: a name, a NUL-padded name (FreeBSD's struct
    tcp_function_set starts with it), or a numeric id."""
    if isinstance(value, bytes):
        value = value[:TCP_FUNCTION_NAME_LEN_MAX].split(b"\0", 1)[0].decode(errors="replace")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return get(value)


def fallback(ep: TCPEndpoint) -> TCPStack:
    """The stack a refused connection falls back to: the stack-wide default, or the
    ``default`` stack if that refuses too."""
    try:
        configured = get(ep.config.tcp_stack)
    except KeyError:
        return DEFAULT
    return configured if configured.handoff_ok(ep) == 0 else DEFAULT


def select(ep: TCPEndpoint, value: int | bytes | str) -> None:
    """setsockopt(TCP_FUNCTION_BLK): switch now, or raise the refusal's OSError."""
    try:
        stack = parse(value)
    except KeyError:
        raise OSError(errno.ENOENT, f"No such TCP stack: {value!r}") from None
    if stack is ep.sender.tcp_stack:
        return
    refused = stack.handoff_ok(ep)
    if refused:
        ep.stack.stats.count("tcp.stack_switch_refused")
        raise OSError(refused, f"TCP stack {stack.name} refuses this connection now")
    ep.sender.switch_stack(stack)
    if ep.state.synchronized:
        ep.stack.stats.count("tcp.stack_switches")


def settle(ep: TCPEndpoint) -> None:
    """At establishment: the stack chosen before the handshake (or inherited from the
    listener) confirms it takes the connection, or it falls back."""
    stack = ep.sender.tcp_stack
    if stack.handoff_ok(ep) == 0:
        return
    ep.stack.stats.count("tcp.stack_handoff_refused")
    ep.sender.switch_stack(fallback(ep))


register(DEFAULT)
register(RackStack())
