# SPDX-License-Identifier: MIT
"""Socket addresses at the API edge: Python tuples <-> packed bytes and ports."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

ANY4 = bytes(4)
ANY6 = bytes(16)


def family_size(family: int) -> int:
    if family == socket.AF_INET:
        return 4
    if family == socket.AF_INET6:
        return 16
    raise OSError(97, "Address family not supported by protocol")  # EAFNOSUPPORT


def parse_host(family: int, host: str | bytes) -> bytes:
    """A numeric host (or '', 'localhost') to packed bytes; names are not resolved here."""
    size = family_size(family)
    if isinstance(host, bytes):
        host = host.decode()
    if host == "" or (host == "0.0.0.0" and size == 4):
        return bytes(size)
    if host == "localhost":
        return ipaddress.ip_address("127.0.0.1" if size == 4 else "::1").packed
    if host == "<broadcast>" and size == 4:
        return b"\xff\xff\xff\xff"
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
    if len(ip.packed) != size:
        raise socket.gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
    return ip.packed


def parse_sockaddr(family: int, address: Any) -> tuple[bytes, int]:
    """``(host, port)`` or ``(host, port, flowinfo, scope_id)`` -> (packed, port)."""
    if not isinstance(address, tuple) or len(address) < 2:
        raise TypeError(f"address must be a (host, port) tuple, not {address!r}")
    host, port = address[0], address[1]
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise OverflowError("port must be 0-65535.")
    return parse_host(family, host), port


def format_sockaddr(addr: bytes, port: int) -> tuple[Any, ...]:
    """Packed address and port -> the tuple Python's socket module would return."""
    text = str(ipaddress.ip_address(addr))
    return (text, port) if len(addr) == 4 else (text, port, 0, 0)
