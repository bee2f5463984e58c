# SPDX-License-Identifier: MIT
"""Load generators run inside a client namespace: ``python3 clients.py TEST ADDR PORT SECONDS``.

Each prints one JSON object: {"value": ..., "unit": ...}. Plain kernel sockets, so the
same client measures a ustack server and a Linux kernel server alike.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def udp_rr(addr: str, port: int, seconds: float) -> tuple[float, str]:
    s = socket.socket(_family(addr), socket.SOCK_DGRAM)
    s.settimeout(1)
    s.connect((addr, port))
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s.send(b"x")
        try:
            s.recv(16)
            n += 1
        except TimeoutError:
            pass
    return n / seconds, "round trips/s"


def tcp_rr(addr: str, port: int, seconds: float) -> tuple[float, str]:
    s = socket.create_connection((addr, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n = 0
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        s.send(b"x")
        if not s.recv(16):
            break
        n += 1
    s.close()
    return n / (time.monotonic() - start), "round trips/s"


def tcp_crr(addr: str, port: int, seconds: float) -> tuple[float, str]:
    n = 0
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        with socket.create_connection((addr, port), timeout=5) as s:
            s.send(b"x")
            s.recv(16)
        n += 1
    return n / (time.monotonic() - start), "connections/s"


def tcp_send(addr: str, port: int, seconds: float) -> tuple[float, str]:
    """Bulk from this (kernel) client to the server's discard service."""
    s = socket.create_connection((addr, port), timeout=10)
    block = bytes(1 << 20)
    sent = 0
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        s.sendall(block)
        sent += len(block)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # the server closes once it has read everything
    elapsed = time.monotonic() - start
    s.close()
    return sent * 8 / elapsed / 1e6, "Mbit/s"


def tcp_recv(addr: str, port: int, seconds: float) -> tuple[float, str]:
    """Bulk from the server's source service to this (kernel) client."""
    s = socket.create_connection((addr, port), timeout=10)
    buf = bytearray(1 << 20)
    got = 0
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        n = s.recv_into(buf)
        if not n:
            break
        got += n
    elapsed = time.monotonic() - start
    s.close()
    return got * 8 / elapsed / 1e6, "Mbit/s"


TESTS = {"udp_rr": udp_rr, "tcp_rr": tcp_rr, "tcp_crr": tcp_crr, "tcp_send": tcp_send,
         "tcp_recv": tcp_recv}

if __name__ == "__main__":
    name, host, port_text, secs = sys.argv[1:5]
    value, unit = TESTS[name](host, int(port_text), float(secs))
    print(json.dumps({"value": value, "unit": unit}))
    del threading
