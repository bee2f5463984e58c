# SPDX-License-Identifier: MIT
"""Loss recovery strategies, chosen by name: "rfc6675" (SACK), "newreno" (RFC 6582) and
"rack" (RACK-TLP, RFC 8985, with PRR, RFC 6937)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ustack.transport.tcp.recovery.base import AckEvent, LossRecovery

if TYPE_CHECKING:
    from ustack.transport.tcp.sender import Sender

Factory = Callable[["Sender"], LossRecovery]
_REGISTRY: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    _REGISTRY[name] = factory


def create(name: str, sender: Sender) -> LossRecovery:
    return _REGISTRY[name](sender)


def available() -> list[str]:
    return sorted(_REGISTRY)


def _register_builtins() -> None:
    from ustack.transport.tcp.recovery import newreno, rack, sack

    register("rfc6675", sack.SACKRecovery)
    register("newreno", newreno.NewRenoRecovery)
    register("rack", rack.RACKRecovery)


_register_builtins()

__all__ = ["AckEvent", "LossRecovery", "available", "create", "register"]
