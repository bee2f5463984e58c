# SPDX-License-Identifier: MIT
"""SO_REUSEADDR and SO_REUSEPORT on UDP ports, to Linux's rules (udp_lib_lport_inuse):
two sockets whose addresses overlap share a port only when both have SO_REUSEADDR or
both have SO_REUSEPORT. The table below is what Linux 6.18 answered for sockets bound
on 127.0.0.1."""

from __future__ import annotations

import errno
import socket

import pytest

from ustack.socket import DatagramSocket
from ustack.testing.pair import B4, StackPair, make_pair

PORT = 6100
NEITHER, ADDR, PORT_ONLY, BOTH = (False, False), (True, False), (False, True), (True, True)

#: (first socket's options, second socket's options): may the second bind the same port?
LINUX = [
    (NEITHER, NEITHER, False), (NEITHER, ADDR, False), (NEITHER, PORT_ONLY, False),
    (NEITHER, BOTH, False),
    (ADDR, NEITHER, False), (ADDR, ADDR, True), (ADDR, PORT_ONLY, False), (ADDR, BOTH, True),
    (PORT_ONLY, NEITHER, False), (PORT_ONLY, ADDR, False), (PORT_ONLY, PORT_ONLY, True),
    (PORT_ONLY, BOTH, True),
    (BOTH, NEITHER, False), (BOTH, ADDR, True), (BOTH, PORT_ONLY, True), (BOTH, BOTH, True),
]


@pytest.fixture
def pair() -> StackPair:
    return make_pair()


def udp(pair: StackPair, options: tuple[bool, bool], family: int = socket.AF_INET,
        ) -> DatagramSocket:
    sock = pair.b.socket(family, socket.SOCK_DGRAM)
    assert isinstance(sock, DatagramSocket)
    reuse_addr, reuse_port = options
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse_addr))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse_port))
    return sock


def may_bind(sock: DatagramSocket, addr: tuple[str, int]) -> bool:
    try:
        sock.bind(addr)
    except OSError as err:
        assert err.errno == errno.EADDRINUSE
        return False
    return True


@pytest.mark.parametrize(("first", "second", "shared"), LINUX)
@pytest.mark.parametrize(("first_addr", "second_addr"), [
    ("0.0.0.0", "0.0.0.0"), ("0.0.0.0", B4), (B4, "0.0.0.0"), (B4, B4),
    ("0.0.0.0", "239.1.1.1"),  # a socket bound to a group still shares the port space
])
def test_port_sharing_follows_linux(pair: StackPair, first: tuple[bool, bool],
                                    second: tuple[bool, bool], shared: bool, first_addr: str,
                                    second_addr: str) -> None:
    udp(pair, first).bind((first_addr, PORT))
    assert may_bind(udp(pair, second), (second_addr, PORT)) is shared


@pytest.mark.parametrize("options", [NEITHER, ADDR, PORT_ONLY, BOTH])
def test_distinct_addresses_never_clash(pair: StackPair, options: tuple[bool, bool]) -> None:
    udp(pair, options).bind((B4, PORT))
    assert may_bind(udp(pair, NEITHER), ("239.1.1.1", PORT))
    assert may_bind(udp(pair, NEITHER, socket.AF_INET6), ("::", PORT))  # another port space


@pytest.mark.parametrize("holders", [(PORT_ONLY, BOTH), (BOTH, PORT_ONLY)])
def test_a_newcomer_must_agree_with_every_holder(pair: StackPair,
                                                 holders: tuple[tuple[bool, bool], ...]) -> None:
    """Linux refuses a REUSEADDR-only socket next to a REUSEPORT-only one even when a
    socket with both options sits between them, in either binding order.

    (Linux's udp_lib_lport_inuse stops at the first holder it may share with, so a
    REUSEPORT-only newcomer after [REUSEADDR-only, both] slips in there; ustack checks
    every holder, which is the rule udp(7) and socket(7) state.)"""
    for options in holders:
        udp(pair, options).bind(("0.0.0.0", PORT))
    assert not may_bind(udp(pair, ADDR), ("0.0.0.0", PORT))
    assert may_bind(udp(pair, PORT_ONLY), ("0.0.0.0", PORT))


def test_closing_the_holder_frees_the_port(pair: StackPair) -> None:
    holder = udp(pair, ADDR)
    holder.bind(("0.0.0.0", PORT))
    newcomer = udp(pair, PORT_ONLY)
    assert not may_bind(newcomer, ("0.0.0.0", PORT))
    holder.close()
    assert may_bind(newcomer, ("0.0.0.0", PORT))
