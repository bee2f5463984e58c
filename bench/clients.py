# SPDX-License-Identifier: MIT
"""Load generators run inside a client namespace: ``python3 clients.py TEST ADDR PORT SECONDS``.

Each prints one JSON object: {"value": ..., "unit": ...}, and udp_rr adds "lost" and
"sent". Plain kernel sockets, so the same client measures a ustack server and a Linux
kernel server alike.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

Result = dict[str, float | str]  # "value" and "unit", and what else a test reports


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


UDP_REPLY_TIMEOUT = 0.2  # a request unanswered this long counts as lost and is resent
UDP_WARMUP = 10.0  # seconds to wait for the first echo (server start, translator flow setup)


def _udp_exchange(s: socket.socket, request: bytes, timeout: float) -> bool:
    """Send ``request`` and wait up to ``timeout`` for its echo; a late echo of an
    earlier request is skipped, so it can neither count twice nor stand in for this one."""
    deadline = time.monotonic() + timeout
    try:
        s.send(request)
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            if s.recv(16) == request:
                return True
    except TimeoutError:
        pass
    except ConnectionRefusedError:  # an ICMP port unreachable: nobody listening (yet)
        time.sleep(max(0.0, deadline - time.monotonic()))
    return False


def udp_rr(addr: str, port: int, seconds: float) -> Result:
    """1-byte request/response with a per-request timeout: a lost datagram (either way)
    is counted and the next request goes out, so one loss cannot stall the run, and a
    server that never answers is an error, not a rate of 0."""
    s = socket.socket(_family(addr), socket.SOCK_DGRAM)
    s.connect((addr, port))
    warmup_end = time.monotonic() + UDP_WARMUP
    while not _udp_exchange(s, b"\0", UDP_REPLY_TIMEOUT):
        if time.monotonic() > warmup_end:
            raise SystemExit(f"udp_rr: no echo from {addr} port {port} in {UDP_WARMUP:.0f} s")
    n = lost = seq = 0
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        seq = seq % 255 + 1  # 1..255 (0 is the warm-up's): still 1 B, yet tells replies apart
        if _udp_exchange(s, bytes((seq,)), UDP_REPLY_TIMEOUT):
            n += 1
        else:
            lost += 1
    elapsed = time.monotonic() - start
    return {"value": n / elapsed, "unit": "round trips/s", "lost": lost, "sent": n + lost}


def tcp_rr(addr: str, port: int, seconds: float) -> Result:
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
    return {"value": n / (time.monotonic() - start), "unit": "round trips/s"}


def tcp_crr(addr: str, port: int, seconds: float) -> Result:
    n = 0
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        with socket.create_connection((addr, port), timeout=5) as s:
            s.send(b"x")
            s.recv(16)
        n += 1
    return {"value": n / (time.monotonic() - start), "unit": "connections/s"}


def tcp_send(addr: str, port: int, seconds: float) -> Result:
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
    return {"value": sent * 8 / elapsed / 1e6, "unit": "Mbit/s"}


def tcp_recv(addr: str, port: int, seconds: float) -> Result:
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
    return {"value": got * 8 / elapsed / 1e6, "unit": "Mbit/s"}


TESTS = {"udp_rr": udp_rr, "tcp_rr": tcp_rr, "tcp_crr": tcp_crr, "tcp_send": tcp_send,
         "tcp_recv": tcp_recv}

if __name__ == "__main__":
    name, host, port_text, secs = sys.argv[1:5]
    print(json.dumps(TESTS[name](host, int(port_text), float(secs))))
    del threading
