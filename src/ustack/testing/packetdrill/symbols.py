# SPDX-License-Identifier: MIT
"""Names a script may use in system calls, and evaluating argument expressions.

The numbers are the ones ustack's socket API takes (Linux's, as Python's socket
module has them); options only another system has (FreeBSD's TCP_NOOPT, ...)
get private numbers the runner handles itself. Errno names are Python's errno.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct

from ustack.testing.packetdrill.lexer import ScriptError
from ustack.testing.packetdrill.model import (
    BinaryExpr,
    CallExpr,
    Ellipsis_,
    Expr,
    ListExpr,
    StructExpr,
    Word,
)
from ustack.transport.tcp.socket import TCP_NOOPT  # FreeBSD's, in ustack's option space

TCP_NOPUSH = socket.TCP_CORK  # FreeBSD's TCP_NOPUSH is what Linux calls TCP_CORK

_PREFIXES = ("AF_", "SOCK_", "IPPROTO_", "SOL_", "SO_", "TCP_", "IP_", "IPV6_", "MSG_",
             "SHUT_", "POLL", "EPOLL")


def _build() -> dict[str, int]:
    table: dict[str, int] = {}
    for name in dir(socket):
        if name.startswith(_PREFIXES) and isinstance(getattr(socket, name), int):
            table[name] = int(getattr(socket, name))
    for name in ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_NONBLOCK", "O_APPEND"):
        table[name] = getattr(os, name)
    table.update(F_GETFD=1, F_SETFD=2, F_GETFL=3, F_SETFL=4, FD_CLOEXEC=1,
                 SOL_TCP=socket.IPPROTO_TCP, SOL_IP=socket.IPPROTO_IP,
                 SOL_IPV6=socket.IPPROTO_IPV6, TCP_NOOPT=TCP_NOOPT, TCP_NOPUSH=TCP_NOPUSH,
                 TCP_INFO=getattr(socket, "TCP_INFO", 11),
                 TCP_CONGESTION=getattr(socket, "TCP_CONGESTION", 13),
                 TCP_USER_TIMEOUT=getattr(socket, "TCP_USER_TIMEOUT", 18),
                 POLLIN=0x1, POLLPRI=0x2, POLLOUT=0x4, POLLERR=0x8, POLLHUP=0x10,
                 POLLNVAL=0x20, POLLRDNORM=0x40, POLLRDBAND=0x80, POLLWRNORM=0x100,
                 POLLRDHUP=0x2000)
    for code, name in errno.errorcode.items():
        table.setdefault(name, code)
    table["EWOULDBLOCK"] = errno.EWOULDBLOCK
    return table


SYMBOLS = _build()


def errno_name(code: int) -> str:
    return errno.errorcode.get(code, str(code))


def symbol(word: Word, line: int) -> int:
    if word.name not in SYMBOLS:
        raise ScriptError(line, f"unknown symbol {word.name}")
    return SYMBOLS[word.name]


Value = int | str | bytes | list["Value"] | dict[str, "Value"] | None


def evaluate(expr: Expr, line: int) -> Value:
    """An argument's value: ints, strings, lists, dicts for structs; None for ``...``."""
    if isinstance(expr, Ellipsis_):
        return None
    if isinstance(expr, int | str):
        return expr
    if isinstance(expr, Word):
        return symbol(expr, line)
    if isinstance(expr, BinaryExpr):
        lhs, rhs = evaluate(expr.lhs, line), evaluate(expr.rhs, line)
        if not isinstance(lhs, int) or not isinstance(rhs, int):
            raise ScriptError(line, f"'{expr.op}' needs integers")
        return lhs | rhs
    if isinstance(expr, ListExpr):
        return [evaluate(item, line) for item in expr.items]
    if isinstance(expr, StructExpr):
        return {name or str(i): evaluate(value, line)
                for i, (name, value) in enumerate(expr.fields)}
    if isinstance(expr, CallExpr):
        return _call(expr, line)
    raise ScriptError(line, f"cannot evaluate {expr!r}")


def _call(expr: CallExpr, line: int) -> Value:
    args = [evaluate(a, line) for a in expr.args]
    if expr.name in ("htons", "ntohs") and isinstance(args[0], int):
        return args[0]  # ports stay in host order here: the runner passes them as numbers
    if expr.name in ("htonl", "ntohl") and isinstance(args[0], int):
        return args[0]
    if expr.name in ("inet_addr", "inet6_addr") and isinstance(args[0], str):
        return ipaddress.ip_address(args[0]).packed
    raise ScriptError(line, f"unsupported function {expr.name}()")


def as_int(value: Value, line: int, what: str) -> int:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, int):
        raise ScriptError(line, f"{what} must be an integer")
    return value


def pack_linger(value: dict[str, Value], line: int) -> bytes:
    return struct.pack("ii", as_int(value.get("onoff", value.get("0")), line, "l_onoff"),
                       as_int(value.get("linger", value.get("1")), line, "l_linger"))
