# SPDX-License-Identifier: MIT
"""Congestion control algorithms, chosen by name per socket (TCP_CONGESTION) or per stack."""

from __future__ import annotations

from collections.abc import Callable

from ustack.transport.tcp.cc.base import CongestionControl

Factory = Callable[[int], CongestionControl]
_REGISTRY: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    _REGISTRY[name] = factory


def create(name: str, mss: int) -> CongestionControl:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown congestion control {name!r}; "
                       f"have {', '.join(sorted(_REGISTRY))}") from None
    return factory(mss)


def available() -> list[str]:
    return sorted(_REGISTRY)


def _register_builtins() -> None:
    from ustack.transport.tcp.cc import bbr, cubic, newreno

    register("newreno", newreno.NewReno)
    register("reno", newreno.NewReno)
    register("cubic", cubic.Cubic)
    register("bbr", bbr.BBR)


_register_builtins()
